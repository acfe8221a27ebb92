build-m/obj/server/timedwait.o: server/timedwait.c server/timedwait.h
server/timedwait.h:
