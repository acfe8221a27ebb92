build-m/obj/storage/memory.o: storage/memory.c storage/storage.h \
 common/status.h storage/item.h
storage/storage.h:
common/status.h:
storage/item.h:
