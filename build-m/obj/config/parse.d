build-m/obj/config/parse.o: config/parse.c config/config.h aws/aws.h \
 common/status.h common/util.h common/utf8.h config/parse.h
config/config.h:
aws/aws.h:
common/status.h:
common/util.h:
common/utf8.h:
config/parse.h:
