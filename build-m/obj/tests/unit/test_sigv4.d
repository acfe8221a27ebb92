build-m/obj/tests/unit/test_sigv4.o: tests/unit/test_sigv4.c aws/sigv4.h \
 common/status.h
aws/sigv4.h:
common/status.h:
