build-m/obj/server/connections.o: server/connections.c \
 server/connections.h common/log.h common/status.h common/util.h \
 common/utf8.h common/secret.h server/timedwait.h
server/connections.h:
common/log.h:
common/status.h:
common/util.h:
common/utf8.h:
common/secret.h:
server/timedwait.h:
