build-m/obj/common/bytes.o: common/bytes.c common/bytes.h
common/bytes.h:
