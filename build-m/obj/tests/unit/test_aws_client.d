build-m/obj/tests/unit/test_aws_client.o: tests/unit/test_aws_client.c \
 aws/aws.h common/status.h common/util.h common/utf8.h aws/backoff.h \
 aws/json_scan.h aws/sigv4.h aws/time.h
aws/aws.h:
common/status.h:
common/util.h:
common/utf8.h:
aws/backoff.h:
aws/json_scan.h:
aws/sigv4.h:
aws/time.h:
