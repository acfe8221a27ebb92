build-m/obj/common/secret.o: common/secret.c common/secret.h
common/secret.h:
