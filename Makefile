# keystored - one readable Makefile.
#
#   make            build build/keystored and build/keystorectl (the client, README "keystorectl")
#   make run        install missing Debian packages, build, start the embedded default
#   make test       install what the tests need, build, run every suite
#   make asan       every suite under AddressSanitizer + UBSan (LeakSanitizer included)
#   make check-style   clang-format, banned functions, layer/include graph, function length
#   make bench      benchmarks; figures and commands in bench/RESULTS.md
#   make fuzz       every libFuzzer target for FUZZ_SECONDS each (clang; tests/fuzz/README.md)
#   make container-test   build the container image (Dockerfile) and check it (README "Container")
#   make clean

BUILD    ?= build
CC       ?= cc
PKGS     := libmicrohttpd json-c yaml-0.1 libcrypto sqlite3 libcurl
WARNINGS := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Wpointer-arith -Wcast-qual
OPT      ?= -O2 -g
HARDEN   ?= -fstack-protector-strong -D_FORTIFY_SOURCE=2
SAN      ?=
KS_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARNINGS) $(OPT) $(HARDEN) $(SAN) -I. \
            $(shell pkg-config --cflags $(PKGS) 2>/dev/null) $(CFLAGS)
KS_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread
KS_LDFLAGS = $(SAN) $(LDFLAGS)

# Sources by layer (docs/architecture.md section 2): a request goes server -> handlers -> keystore ->
# storage/kms; config/ and common/ are used by all.
COMMON_SRC   := $(wildcard common/*.c)
AWS_SRC      := $(wildcard aws/*.c)
CONFIG_SRC   := $(wildcard config/*.c)
STORAGE_SRC  := $(wildcard storage/*.c)
KMS_SRC      := $(wildcard kms/*.c)
KEYSTORE_SRC := $(wildcard keystore/*.c)
KEYRING_SRC  := $(wildcard keyring/*.c)
HANDLERS_SRC := $(wildcard handlers/*.c)
SERVER_SRC   := $(filter-out server/main.c,$(wildcard server/*.c))
LIB_SRC      := $(COMMON_SRC) $(AWS_SRC) $(CONFIG_SRC) $(STORAGE_SRC) $(KMS_SRC) $(KEYSTORE_SRC) \
                $(KEYRING_SRC) $(HANDLERS_SRC) $(SERVER_SRC)
UNIT_SRC     := $(wildcard tests/unit/*.c)
# Integration suites: one binary per file, each against real peers it starts on loopback
# (tests/peers/: the KMS test server, DynamoDB Local).
INTEG_SRC    := $(wildcard tests/integration/*.c)
INTEG_BIN    := $(INTEG_SRC:tests/integration/%.c=$(BUILD)/integration/%)
# Fuzz targets (tests/fuzz/README.md): one file each; driver.c replays them without libFuzzer.
FUZZ_SRC     := $(filter-out tests/fuzz/driver.c,$(wildcard tests/fuzz/*.c))
FUZZ_TARGETS := $(FUZZ_SRC:tests/fuzz/%.c=%)
FUZZ_OBJ     := $(FUZZ_SRC:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/tests/fuzz/driver.o
FUZZ_SECONDS ?= 60

# keystorectl (cli/): a client of the REST API; it links common/util.o and nothing of the
# server's layers (scripts/check-layers.sh: cli/ includes common/ only).
CLI_SRC      := $(wildcard cli/*.c)
CLI_OBJ      := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
CLI_LIBS      = $(shell pkg-config --libs json-c libcurl libcrypto 2>/dev/null)

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/gen/openapi.o
UNIT_OBJ := $(UNIT_SRC:%.c=$(BUILD)/obj/%.o)
INTEG_OBJ := $(INTEG_SRC:%.c=$(BUILD)/obj/%.o)

# Tests find their data (tests/data/) and the example configs by absolute path, so they run from
# any directory and read nothing outside the repository.
$(UNIT_OBJ) $(INTEG_OBJ): KS_CFLAGS += -DKS_SOURCE_DIR='"$(CURDIR)"' \
                                       -DKS_TEST_DATA_DIR='"$(CURDIR)/tests/data"'

.PHONY: all run test asan check-style bench clean test-suites unit http integration interop \
        fuzz fuzz-replay fuzz-targets container-test

all: $(BUILD)/keystored $(BUILD)/keystorectl

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(KS_CFLAGS) -MMD -MP -c $< -o $@

# openapi/openapi.yaml is compiled in, served at GET /v1/openapi.yaml.
$(BUILD)/gen/openapi.c: openapi/openapi.yaml
	@mkdir -p $(dir $@)
	{ echo '#include <stddef.h>'; \
	  echo 'extern const char ks_openapi_yaml[]; extern const size_t ks_openapi_yaml_len;'; \
	  echo 'const char ks_openapi_yaml[] ='; \
	  sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/"/' -e 's/$$/\\n"/' $<; \
	  echo ';'; echo 'const size_t ks_openapi_yaml_len = sizeof ks_openapi_yaml - 1;'; } > $@

$(BUILD)/obj/gen/openapi.o: $(BUILD)/gen/openapi.c
	@mkdir -p $(dir $@)
	$(CC) $(KS_CFLAGS) -c $< -o $@

$(BUILD)/libkeystored.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/keystored: $(BUILD)/obj/server/main.o $(BUILD)/libkeystored.a
	$(CC) $(KS_LDFLAGS) -o $@ $^ $(KS_LIBS)

$(BUILD)/keystorectl: $(CLI_OBJ) $(BUILD)/obj/common/util.o
	$(CC) $(KS_LDFLAGS) -o $@ $^ $(CLI_LIBS)

$(BUILD)/unit-tests: $(UNIT_OBJ) $(BUILD)/libkeystored.a
	$(CC) $(KS_LDFLAGS) -o $@ $^ $(KS_LIBS) -lcriterion

$(BUILD)/integration/%: $(BUILD)/obj/tests/integration/%.o $(BUILD)/libkeystored.a
	@mkdir -p $(dir $@)
	$(CC) $(KS_LDFLAGS) -o $@ $^ $(KS_LIBS) -lcriterion

# --- the two commands of the README -------------------------------------------------------
run:
	./scripts/install-deps.sh run
	$(MAKE) all
	./$(BUILD)/keystored $(ARGS)

test:
	./scripts/install-deps.sh test
	$(MAKE) test-suites

# Every suite, in order; BUILD selects the plain or the sanitizer build. Criterion does not
# fail a test on a LeakSanitizer report, so sanitizer output is scanned (scripts/run-unit.sh).
test-suites: $(BUILD)/keystored $(BUILD)/keystorectl $(BUILD)/unit-tests $(INTEG_BIN)
	./scripts/run-unit.sh ./$(BUILD)/unit-tests
	node --test tests/peers/
	./scripts/run-unit.sh ./$(BUILD)/integration/test_aws_kms
	node tests/integration/run-dynamodb.mjs ./$(BUILD)/integration/test_dynamodb
	KEYSTORED=./$(BUILD)/keystored node tests/http/run.mjs
	KEYSTORED=./$(BUILD)/keystored node tests/interop/run.mjs
	KEYSTORED=./$(BUILD)/keystored node tests/interop/keyring.mjs
	$(MAKE) fuzz-replay

unit: $(BUILD)/unit-tests
	./scripts/run-unit.sh ./$(BUILD)/unit-tests

integration: $(INTEG_BIN)
	node --test tests/peers/
	./scripts/run-unit.sh ./$(BUILD)/integration/test_aws_kms
	node tests/integration/run-dynamodb.mjs ./$(BUILD)/integration/test_dynamodb

interop: $(BUILD)/keystored
	KEYSTORED=./$(BUILD)/keystored node tests/interop/run.mjs
	KEYSTORED=./$(BUILD)/keystored node tests/interop/keyring.mjs

http: $(BUILD)/keystored $(BUILD)/keystorectl
	KEYSTORED=./$(BUILD)/keystored node tests/http/run.mjs

asan:
	./scripts/install-deps.sh test
	ASAN_OPTIONS=detect_leaks=1:strict_string_checks=1 CRITERION_NO_EARLY_EXIT=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	$(MAKE) BUILD=build-asan OPT="-O1 -g -fno-omit-frame-pointer" HARDEN= \
	    SAN="-fsanitize=address,undefined -fno-sanitize-recover=all" test-suites

check-style:
	clang-format --dry-run --Werror $(LIB_SRC) server/main.c $(wildcard */*.h) $(UNIT_SRC) $(INTEG_SRC) $(CLI_SRC) \
	    $(wildcard tests/fuzz/*.[ch])
	@if grep -nE '\b(strcpy|sprintf|strcat|atoi|gets)[[:space:]]*\(' $(LIB_SRC) server/main.c $(UNIT_SRC) $(INTEG_SRC) $(CLI_SRC); \
	then echo "banned function (docs/style.md)"; exit 1; fi
	./scripts/check-layers.sh
	./scripts/check-function-length.sh --max 100

bench: all
	./bench/run.sh
	node bench/miss_path.mjs
	./bench/keyring.sh
	node bench/hv2_miss.mjs

# --- fuzzing (tests/fuzz/README.md) ---------------------------------------------------------
# The replay: every target built with $(CC) and driver.c, run over its seed corpus and its
# regression inputs (part of test-suites, so of `make test` and `make asan`; takes seconds).
$(BUILD)/fuzz-replay/%: $(BUILD)/obj/tests/fuzz/%.o $(BUILD)/obj/tests/fuzz/driver.o \
                        $(BUILD)/libkeystored.a
	@mkdir -p $(dir $@)
	$(CC) $(KS_LDFLAGS) -o $@ $^ $(KS_LIBS)

fuzz-replay: $(FUZZ_TARGETS:%=$(BUILD)/fuzz-replay/%)
	./tests/fuzz/replay.sh $(BUILD)/fuzz-replay $(FUZZ_TARGETS)

# libFuzzer: everything instrumented with clang in build-fuzz, each target run in turn for
# FUZZ_SECONDS on a scratch copy of its corpus (the checked-in one is never written to).
$(BUILD)/fuzz/%: $(BUILD)/obj/tests/fuzz/%.o $(BUILD)/libkeystored.a
	@mkdir -p $(dir $@)
	$(CC) $(KS_LDFLAGS) -fsanitize=fuzzer -o $@ $^ $(KS_LIBS)

fuzz-targets: $(FUZZ_TARGETS:%=$(BUILD)/fuzz/%)

fuzz:
	./scripts/install-deps.sh fuzz
	$(MAKE) BUILD=build-fuzz CC=clang OPT="-O1 -g -fno-omit-frame-pointer" HARDEN= \
	    SAN="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all" fuzz-targets
	./tests/fuzz/run.sh build-fuzz/fuzz $(FUZZ_SECONDS) $(FUZZ_TARGETS)

clean:
	rm -rf build build-asan build-fuzz

.SECONDARY: $(INTEG_SRC:%.c=$(BUILD)/obj/%.o) $(FUZZ_OBJ)
-include $(LIB_OBJ:.o=.d) $(UNIT_OBJ:.o=.d) $(INTEG_OBJ:.o=.d) $(BUILD)/obj/server/main.d $(CLI_OBJ:.o=.d) \
         $(FUZZ_OBJ:.o=.d)

# Not part of make test: it builds images (minutes) and needs root (README "Container").
container-test:
	./scripts/install-deps.sh container
	./scripts/container-test.sh
