build-m/obj/tests/unit/test_keystore.o: tests/unit/test_keystore.c \
 common/ec.h common/secret.h common/util.h common/utf8.h aws/arn.h \
 keystore/keystore.h common/status.h config/config.h aws/aws.h \
 aws/backoff.h aws/json_scan.h aws/sigv4.h aws/time.h \
 keystore/materials.h kms/kms.h common/bytes.h storage/storage.h \
 storage/item.h keystore/testing.h
common/ec.h:
common/secret.h:
common/util.h:
common/utf8.h:
aws/arn.h:
keystore/keystore.h:
common/status.h:
config/config.h:
aws/aws.h:
aws/backoff.h:
aws/json_scan.h:
aws/sigv4.h:
aws/time.h:
keystore/materials.h:
kms/kms.h:
common/bytes.h:
storage/storage.h:
storage/item.h:
keystore/testing.h:
