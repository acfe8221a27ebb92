build-m/obj/tests/unit/test_log.o: tests/unit/test_log.c common/log.h \
 common/status.h common/util.h common/utf8.h
common/log.h:
common/status.h:
common/util.h:
common/utf8.h:
