build-m/obj/common/secbuf.o: common/secbuf.c common/secbuf.h \
 common/secret.h
common/secbuf.h:
common/secret.h:
