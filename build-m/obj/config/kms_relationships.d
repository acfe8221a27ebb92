build-m/obj/config/kms_relationships.o: config/kms_relationships.c \
 config/config.h aws/aws.h common/status.h common/util.h common/utf8.h \
 aws/backoff.h aws/json_scan.h aws/sigv4.h aws/time.h config/parse.h \
 aws/arn.h
config/config.h:
aws/aws.h:
common/status.h:
common/util.h:
common/utf8.h:
aws/backoff.h:
aws/json_scan.h:
aws/sigv4.h:
aws/time.h:
config/parse.h:
aws/arn.h:
