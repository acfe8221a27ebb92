build-m/obj/aws/backoff.o: aws/backoff.c aws/backoff.h
aws/backoff.h:
