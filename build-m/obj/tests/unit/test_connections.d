build-m/obj/tests/unit/test_connections.o: tests/unit/test_connections.c \
 common/util.h common/utf8.h server/connections.h common/log.h \
 common/status.h
common/util.h:
common/utf8.h:
server/connections.h:
common/log.h:
common/status.h:
