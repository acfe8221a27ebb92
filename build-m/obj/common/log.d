build-m/obj/common/log.o: common/log.c common/log.h common/status.h \
 common/util.h common/utf8.h
common/log.h:
common/status.h:
common/util.h:
common/utf8.h:
