build-m/obj/handlers/system.o: handlers/system.c common/jsonw.h \
 common/secbuf.h common/secret.h handlers/handlers.h common/status.h \
 config/config.h aws/aws.h common/util.h common/utf8.h aws/backoff.h \
 aws/json_scan.h aws/sigv4.h aws/time.h keystore/keystore.h common/ec.h \
 keystore/materials.h kms/kms.h common/bytes.h storage/storage.h \
 storage/item.h
common/jsonw.h:
common/secbuf.h:
common/secret.h:
handlers/handlers.h:
common/status.h:
config/config.h:
aws/aws.h:
common/util.h:
common/utf8.h:
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
