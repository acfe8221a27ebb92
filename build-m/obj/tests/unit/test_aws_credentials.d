build-m/obj/tests/unit/test_aws_credentials.o: \
 tests/unit/test_aws_credentials.c aws/aws.h common/status.h \
 common/util.h common/utf8.h
aws/aws.h:
common/status.h:
common/util.h:
common/utf8.h:
