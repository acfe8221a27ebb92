build-m/obj/aws/json_scan.o: aws/json_scan.c aws/json_scan.h \
 common/secret.h common/util.h common/utf8.h
aws/json_scan.h:
common/secret.h:
common/util.h:
common/utf8.h:
