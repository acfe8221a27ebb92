build-m/obj/tests/unit/test_local_kms.o: tests/unit/test_local_kms.c \
 common/base64.h common/ec.h common/util.h common/utf8.h kms/kms.h \
 common/bytes.h common/status.h
common/base64.h:
common/ec.h:
common/util.h:
common/utf8.h:
kms/kms.h:
common/bytes.h:
common/status.h:
