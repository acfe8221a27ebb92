build-m/obj/server/auth.o: server/auth.c server/auth.h config/config.h \
 aws/aws.h common/status.h common/util.h common/utf8.h aws/backoff.h \
 aws/json_scan.h aws/sigv4.h aws/time.h
server/auth.h:
config/config.h:
aws/aws.h:
common/status.h:
common/util.h:
common/utf8.h:
aws/backoff.h:
aws/json_scan.h:
aws/sigv4.h:
aws/time.h:
