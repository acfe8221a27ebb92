build-m/obj/common/json_check.o: common/json_check.c common/json_check.h \
 common/status.h common/utf8.h common/util.h
common/json_check.h:
common/status.h:
common/utf8.h:
common/util.h:
