build-m/obj/aws/time.o: aws/time.c aws/time.h
aws/time.h:
