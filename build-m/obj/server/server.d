build-m/obj/server/server.o: server/server.c server/server.h common/log.h \
 common/status.h common/util.h common/utf8.h handlers/handlers.h \
 config/config.h aws/aws.h aws/backoff.h aws/json_scan.h aws/sigv4.h \
 aws/time.h keystore/keystore.h common/ec.h keystore/materials.h \
 kms/kms.h common/bytes.h storage/storage.h storage/item.h \
 common/json_check.h common/secret.h server/auth.h server/connections.h \
 server/readiness.h server/router.h
server/server.h:
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
common/json_check.h:
common/secret.h:
server/auth.h:
server/connections.h:
server/readiness.h:
server/router.h:
