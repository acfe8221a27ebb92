build-m/obj/storage/item.o: storage/item.c storage/item.h common/status.h \
 common/base64.h common/util.h common/utf8.h
storage/item.h:
common/status.h:
common/base64.h:
common/util.h:
common/utf8.h:
