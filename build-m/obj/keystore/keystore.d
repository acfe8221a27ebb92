build-m/obj/keystore/keystore.o: keystore/keystore.c keystore/keystore.h \
 common/ec.h common/status.h common/util.h common/utf8.h config/config.h \
 aws/aws.h aws/backoff.h aws/json_scan.h aws/sigv4.h aws/time.h \
 keystore/materials.h kms/kms.h common/bytes.h storage/storage.h \
 storage/item.h common/secret.h aws/arn.h keystore/cache.h \
 keystore/testing.h
keystore/keystore.h:
common/ec.h:
common/status.h:
common/util.h:
common/utf8.h:
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
common/secret.h:
aws/arn.h:
keystore/cache.h:
keystore/testing.h:
