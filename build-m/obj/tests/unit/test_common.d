build-m/obj/tests/unit/test_common.o: tests/unit/test_common.c \
 common/base64.h common/ec.h common/jsonw.h common/secbuf.h \
 common/secret.h common/status.h common/utf8.h common/util.h
common/base64.h:
common/ec.h:
common/jsonw.h:
common/secbuf.h:
common/secret.h:
common/status.h:
common/utf8.h:
common/util.h:
