build-m/obj/storage/storage.o: storage/storage.c storage/storage.h \
 common/status.h storage/item.h
storage/storage.h:
common/status.h:
storage/item.h:
