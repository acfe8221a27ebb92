build-m/obj/aws/http.o: aws/http.c aws/http.h common/status.h
aws/http.h:
common/status.h:
