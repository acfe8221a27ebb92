build-m/obj/handlers/branch_keys.o: handlers/branch_keys.c common/jsonw.h \
 common/secbuf.h common/utf8.h common/util.h handlers/handlers.h \
 common/status.h config/config.h aws/aws.h aws/backoff.h aws/json_scan.h \
 aws/sigv4.h aws/time.h keystore/keystore.h common/ec.h \
 keystore/materials.h kms/kms.h common/bytes.h storage/storage.h \
 storage/item.h
common/jsonw.h:
common/secbuf.h:
common/utf8.h:
common/util.h:
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
