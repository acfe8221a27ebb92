build-m/obj/aws/profile.o: aws/profile.c aws/profile.h common/secret.h \
 aws/provider.h aws/aws.h common/status.h common/util.h common/utf8.h \
 aws/backoff.h aws/json_scan.h aws/sigv4.h aws/time.h
aws/profile.h:
common/secret.h:
aws/provider.h:
aws/aws.h:
common/status.h:
common/util.h:
common/utf8.h:
aws/backoff.h:
aws/json_scan.h:
aws/sigv4.h:
aws/time.h:
