build-m/obj/common/util.o: common/util.c common/util.h common/utf8.h
common/util.h:
common/utf8.h:
