build-m/obj/aws/client.o: aws/client.c aws/aws.h common/status.h \
 common/util.h common/utf8.h aws/backoff.h aws/json_scan.h aws/sigv4.h \
 aws/time.h common/secbuf.h common/secret.h aws/http.h
aws/aws.h:
common/status.h:
common/util.h:
common/utf8.h:
aws/backoff.h:
aws/json_scan.h:
aws/sigv4.h:
aws/time.h:
common/secbuf.h:
common/secret.h:
aws/http.h:
