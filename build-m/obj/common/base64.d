build-m/obj/common/base64.o: common/base64.c common/base64.h
common/base64.h:
