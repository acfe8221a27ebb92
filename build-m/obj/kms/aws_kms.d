build-m/obj/kms/aws_kms.o: kms/aws_kms.c kms/kms.h common/bytes.h \
 common/ec.h common/status.h aws/aws.h common/util.h common/utf8.h \
 aws/backoff.h aws/json_scan.h aws/sigv4.h aws/time.h config/config.h \
 common/base64.h common/jsonw.h common/secbuf.h common/secret.h
kms/kms.h:
common/bytes.h:
common/ec.h:
common/status.h:
aws/aws.h:
common/util.h:
common/utf8.h:
aws/backoff.h:
aws/json_scan.h:
aws/sigv4.h:
aws/time.h:
config/config.h:
common/base64.h:
common/jsonw.h:
common/secbuf.h:
common/secret.h:
