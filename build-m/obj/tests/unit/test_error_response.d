build-m/obj/tests/unit/test_error_response.o: \
 tests/unit/test_error_response.c common/secret.h common/util.h \
 common/utf8.h handlers/handlers.h common/status.h config/config.h \
 aws/aws.h aws/backoff.h aws/json_scan.h aws/sigv4.h aws/time.h \
 keystore/keystore.h common/ec.h keystore/materials.h kms/kms.h \
 common/bytes.h storage/storage.h storage/item.h
common/secret.h:
common/util.h:
common/utf8.h:
handlers/handlers.h:
common/status.h:
config/config.h:
aws/aws.h:
aws/backoff.h:
aws/json_scan.h:
aws/sigv4.h:
aws/time.h:
keystore/keystore.h:
common/ec.h:
keystore/materials.h:
kms/kms.h:
common/bytes.h:
storage/storage.h:
storage/item.h:
