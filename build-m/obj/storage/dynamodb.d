build-m/obj/storage/dynamodb.o: storage/dynamodb.c storage/storage.h \
 common/status.h storage/item.h aws/aws.h common/util.h common/utf8.h \
 aws/backoff.h aws/json_scan.h aws/sigv4.h aws/time.h config/config.h
storage/storage.h:
common/status.h:
storage/item.h:
aws/aws.h:
common/util.h:
common/utf8.h:
aws/backoff.h:
aws/json_scan.h:
aws/sigv4.h:
aws/time.h:
config/config.h:
