build-m/obj/tests/unit/test_arn.o: tests/unit/test_arn.c aws/arn.h
aws/arn.h:
