build-m/obj/config/parse.o: config/parse.c config/config.h aws/aws.h \
 common/status.h common/util.h common/utf8.h aws/backoff.h \
 aws/json_scan.h aws/sigv4.h aws/time.h config/parse.h
config/config.h:
aws/aws.h:
common/status.h:
common/util.h:
common/utf8.h:
aws/backoff.h:
aws/json_scan.h:
aws/sigv4.h:
aws/time.h:
config/parse.h:
