build-m/obj/tests/integration/test_aws_kms.o: \
 tests/integration/test_aws_kms.c aws/aws.h common/status.h common/util.h \
 common/utf8.h aws/backoff.h aws/json_scan.h aws/profile.h aws/sigv4.h \
 aws/time.h config/config.h common/ec.h kms/kms.h common/bytes.h
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
common/ec.h:
kms/kms.h:
common/bytes.h:
