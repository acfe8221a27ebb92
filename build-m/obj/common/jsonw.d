build-m/obj/common/jsonw.o: common/jsonw.c common/jsonw.h common/secbuf.h \
 common/base64.h common/secret.h common/utf8.h
common/jsonw.h:
common/secbuf.h:
common/base64.h:
common/secret.h:
common/utf8.h:
