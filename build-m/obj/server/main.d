build-m/obj/server/main.o: server/main.c common/log.h common/status.h \
 common/util.h common/utf8.h common/secret.h config/config.h aws/aws.h \
 aws/backoff.h aws/json_scan.h aws/sigv4.h aws/time.h server/app.h \
 handlers/handlers.h keystore/keystore.h common/ec.h keystore/materials.h \
 kms/kms.h common/bytes.h storage/storage.h storage/item.h \
 server/server.h
common/log.h:
common/status.h:
common/util.h:
common/utf8.h:
common/secret.h:
config/config.h:
aws/aws.h:
aws/backoff.h:
aws/json_scan.h:
aws/sigv4.h:
aws/time.h:
server/app.h:
handlers/handlers.h:
keystore/keystore.h:
common/ec.h:
keystore/materials.h:
kms/kms.h:
common/bytes.h:
storage/storage.h:
storage/item.h:
server/server.h:
