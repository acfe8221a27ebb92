build-m/obj/kms/kms.o: kms/kms.c kms/kms.h common/bytes.h common/ec.h \
 common/status.h common/secret.h
kms/kms.h:
common/bytes.h:
common/ec.h:
common/status.h:
common/secret.h:
