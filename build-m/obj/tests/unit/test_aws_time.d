build-m/obj/tests/unit/test_aws_time.o: tests/unit/test_aws_time.c \
 aws/time.h
aws/time.h:
