build-m/obj/common/status.o: common/status.c common/status.h \
 common/utf8.h
common/status.h:
common/utf8.h:
