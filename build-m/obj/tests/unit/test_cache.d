build-m/obj/tests/unit/test_cache.o: tests/unit/test_cache.c common/ec.h \
 common/secret.h common/util.h common/utf8.h keystore/cache.h \
 common/status.h config/config.h aws/aws.h aws/backoff.h aws/json_scan.h \
 aws/sigv4.h aws/time.h keystore/materials.h keystore/keystore.h \
 kms/kms.h common/bytes.h storage/storage.h storage/item.h \
 keystore/testing.h
common/ec.h:
common/secret.h:
common/util.h:
common/utf8.h:
keystore/cache.h:
common/status.h:
config/config.h:
aws/aws.h:
aws/backoff.h:
aws/json_scan.h:
aws/sigv4.h:
aws/time.h:
keystore/materials.h:
keystore/keystore.h:
kms/kms.h:
common/bytes.h:
storage/storage.h:
storage/item.h:
keystore/testing.h:
