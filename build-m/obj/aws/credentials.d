build-m/obj/aws/credentials.o: aws/credentials.c aws/aws.h \
 common/status.h common/util.h common/utf8.h common/secbuf.h \
 common/secret.h
aws/aws.h:
common/status.h:
common/util.h:
common/utf8.h:
common/secbuf.h:
common/secret.h:
