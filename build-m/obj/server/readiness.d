build-m/obj/server/readiness.o: server/readiness.c server/readiness.h \
 common/log.h common/status.h common/util.h common/utf8.h \
 handlers/handlers.h config/config.h aws/aws.h aws/backoff.h \
 aws/json_scan.h aws/sigv4.h aws/time.h keystore/keystore.h common/ec.h \
 keystore/materials.h kms/kms.h common/bytes.h storage/storage.h \
 storage/item.h common/secret.h server/timedwait.h
server/readiness.h:
common/log.h:
common/status.h:
common/util.h:
common/utf8.h:
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
common/secret.h:
server/timedwait.h:
