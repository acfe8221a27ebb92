build-m/obj/common/ec.o: common/ec.c common/ec.h
common/ec.h:
