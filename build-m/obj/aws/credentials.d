build-m/obj/aws/credentials.o: aws/credentials.c aws/provider.h aws/aws.h \
 common/status.h common/util.h common/utf8.h aws/backoff.h \
 aws/json_scan.h aws/sigv4.h aws/time.h common/secret.h aws/http.h
aws/provider.h:
aws/aws.h:
common/status.h:
common/util.h:
common/utf8.h:
aws/backoff.h:
aws/json_scan.h:
aws/sigv4.h:
aws/time.h:
common/secret.h:
aws/http.h:
