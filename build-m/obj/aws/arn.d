build-m/obj/aws/arn.o: aws/arn.c aws/arn.h common/util.h common/utf8.h
aws/arn.h:
common/util.h:
common/utf8.h:
