build-m/obj/aws/sigv4.o: aws/sigv4.c aws/sigv4.h common/status.h \
 common/secret.h common/util.h common/utf8.h
aws/sigv4.h:
common/status.h:
common/secret.h:
common/util.h:
common/utf8.h:
