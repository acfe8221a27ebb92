build-m/obj/keystore/cache.o: keystore/cache.c keystore/cache.h \
 common/status.h common/util.h common/utf8.h config/config.h aws/aws.h \
 aws/backoff.h aws/json_scan.h aws/sigv4.h aws/time.h \
 keystore/materials.h common/ec.h keystore/testing.h common/secret.h
keystore/cache.h:
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
common/ec.h:
keystore/testing.h:
common/secret.h:
