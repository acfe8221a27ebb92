build-m/obj/tests/unit/test_readiness.o: tests/unit/test_readiness.c \
 common/log.h common/status.h common/util.h common/utf8.h \
 server/readiness.h handlers/handlers.h config/config.h aws/aws.h \
 aws/backoff.h aws/json_scan.h aws/sigv4.h aws/time.h keystore/keystore.h \
 common/ec.h keystore/materials.h kms/kms.h common/bytes.h \
 storage/storage.h storage/item.h
common/log.h:
common/status.h:
common/util.h:
common/utf8.h:
server/readiness.h:
handlers/handlers.h:
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
