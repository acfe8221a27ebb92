build-m/obj/keystore/materials.o: keystore/materials.c \
 keystore/materials.h common/ec.h common/secret.h
keystore/materials.h:
common/ec.h:
common/secret.h:
