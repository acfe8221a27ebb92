build-m/obj/kms/local_kms.o: kms/local_kms.c kms/kms.h common/bytes.h \
 common/ec.h common/status.h common/base64.h common/secret.h \
 common/util.h common/utf8.h
kms/kms.h:
common/bytes.h:
common/ec.h:
common/status.h:
common/base64.h:
common/secret.h:
common/util.h:
common/utf8.h:
