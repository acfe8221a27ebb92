build-m/obj/aws/client.o: aws/client.c aws/aws.h common/status.h \
 common/util.h common/utf8.h common/secbuf.h common/secret.h aws/sigv4.h
aws/aws.h:
common/status.h:
common/util.h:
common/utf8.h:
common/secbuf.h:
common/secret.h:
aws/sigv4.h:
