build-m/obj/server/auth.o: server/auth.c server/auth.h config/config.h \
 aws/aws.h common/status.h common/util.h common/utf8.h
server/auth.h:
config/config.h:
aws/aws.h:
common/status.h:
common/util.h:
common/utf8.h:
