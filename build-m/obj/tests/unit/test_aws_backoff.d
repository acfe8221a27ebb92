build-m/obj/tests/unit/test_aws_backoff.o: tests/unit/test_aws_backoff.c \
 aws/backoff.h
aws/backoff.h:
