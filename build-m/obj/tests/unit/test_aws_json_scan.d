build-m/obj/tests/unit/test_aws_json_scan.o: \
 tests/unit/test_aws_json_scan.c aws/json_scan.h
aws/json_scan.h:
