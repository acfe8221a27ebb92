build-m/obj/storage/sqlite.o: storage/sqlite.c storage/storage.h \
 common/status.h storage/item.h
storage/storage.h:
common/status.h:
storage/item.h:
