build-m/obj/tests/unit/test_item.o: tests/unit/test_item.c storage/item.h \
 common/status.h
storage/item.h:
common/status.h:
