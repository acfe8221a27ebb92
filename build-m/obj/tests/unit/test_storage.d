build-m/obj/tests/unit/test_storage.o: tests/unit/test_storage.c \
 common/util.h common/utf8.h storage/storage.h common/status.h \
 storage/item.h
common/util.h:
common/utf8.h:
storage/storage.h:
common/status.h:
storage/item.h:
