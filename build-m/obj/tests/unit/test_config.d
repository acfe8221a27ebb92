build-m/obj/tests/unit/test_config.o: tests/unit/test_config.c aws/arn.h \
 common/util.h common/utf8.h config/config.h aws/aws.h common/status.h \
 aws/backoff.h aws/json_scan.h aws/sigv4.h aws/time.h
aws/arn.h:
common/util.h:
common/utf8.h:
config/config.h:
aws/aws.h:
common/status.h:
aws/backoff.h:
aws/json_scan.h:
aws/sigv4.h:
aws/time.h:
