build-m/obj/tests/unit/test_json_check.o: tests/unit/test_json_check.c \
 common/json_check.h common/status.h common/utf8.h
common/json_check.h:
common/status.h:
common/utf8.h:
