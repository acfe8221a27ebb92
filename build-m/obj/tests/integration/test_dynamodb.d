build-m/obj/tests/integration/test_dynamodb.o: \
 tests/integration/test_dynamodb.c aws/aws.h common/status.h \
 common/util.h common/utf8.h aws/backoff.h aws/json_scan.h aws/profile.h \
 aws/sigv4.h aws/time.h config/config.h storage/storage.h storage/item.h
aws/aws.h:
common/status.h:
common/util.h:
common/utf8.h:
aws/backoff.h:
aws/json_scan.h:
aws/profile.h:
aws/sigv4.h:
aws/time.h:
config/config.h:
storage/storage.h:
storage/item.h:
