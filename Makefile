# stratq build. `make` builds build/stratq; `make test` builds a sanitized
# copy (build/asan/stratq) and runs the unit and integration tests with it.

CC ?= cc
PKGS := hiredis libevent jansson libcurl
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm

WARN := -Wall -Wextra -Werror -Wshadow -Wmissing-prototypes -Wstrict-prototypes -Wformat=2 \
        -Wno-format-nonliteral
BASE_CFLAGS := -std=c11 -g $(WARN) $(PKG_CFLAGS) -Isrc
RELEASE_CFLAGS := -O2
ASAN_CFLAGS := -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
PYTHON ?= /usr/bin/python3

LUA := $(sort $(wildcard src/queue/lua/*.lua))
LIB_SRC := $(sort $(wildcard src/common/*.c src/queue/*.c src/api/*.c src/worker/*.c src/cli/*.c))
MAIN_SRC := src/main.c
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))

# Quiet by default; `make V=1` prints the commands.
V ?= 0
ifeq ($(V),0)
Q := @
say = @echo "  $(1) $@";
else
Q :=
say :=
endif

# $(call objs,DIR,SOURCES)
objs = $(patsubst src/%.c,$(1)/obj/%.o,$(2))

REL_OBJ := $(call objs,build,$(LIB_SRC)) build/obj/gen/lua.o
ASAN_OBJ := $(call objs,build/asan,$(LIB_SRC)) build/asan/obj/gen/lua.o

.PHONY: all deps test unit integration demo bench clean lint format
all: build/stratq

deps:
	@sh scripts/deps.sh

build/gen/lua.c: $(LUA) tools/embed.sh
	@mkdir -p $(@D)
	$(call say,GEN)sh tools/embed.sh $@ lua $(LUA)

build/obj/gen/lua.o: build/gen/lua.c
	@mkdir -p $(@D)
	$(call say,CC)$(CC) $(BASE_CFLAGS) $(RELEASE_CFLAGS) -Wno-missing-variable-declarations -c $< -o $@
build/asan/obj/gen/lua.o: build/gen/lua.c
	@mkdir -p $(@D)
	$(call say,CC)$(CC) $(BASE_CFLAGS) $(ASAN_CFLAGS) -c $< -o $@

build/obj/%.o: src/%.c
	@mkdir -p $(@D)
	$(call say,CC)$(CC) $(BASE_CFLAGS) $(RELEASE_CFLAGS) -MMD -MP -c $< -o $@
build/asan/obj/%.o: src/%.c
	@mkdir -p $(@D)
	$(call say,CC)$(CC) $(BASE_CFLAGS) $(ASAN_CFLAGS) -MMD -MP -c $< -o $@

build/stratq: $(REL_OBJ) build/obj/main.o
	$(call say,CC)$(CC) $(RELEASE_CFLAGS) $^ $(PKG_LIBS) -o $@
build/asan/stratq: $(ASAN_OBJ) build/asan/obj/main.o
	$(call say,CC)$(CC) $(ASAN_CFLAGS) $^ $(PKG_LIBS) -o $@

build/asan/unit/%: tests/unit/%.c $(ASAN_OBJ)
	@mkdir -p $(@D)
	$(call say,CC)$(CC) $(BASE_CFLAGS) $(ASAN_CFLAGS) $^ $(PKG_LIBS) -lcmocka -o $@

UNIT_BIN := $(patsubst tests/unit/%.c,build/asan/unit/%,$(UNIT_SRC))

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

integration: build/asan/stratq
	STRATQ_BIN=$(CURDIR)/build/asan/stratq $(PYTHON) -m pytest -q tests/integration

test: deps
	$(MAKE) unit
	$(MAKE) integration

demo: deps build/stratq
	@sh scripts/demo.sh

bench: deps build/stratq
	@sh scripts/bench.sh

lint:
	shellcheck scripts/*.sh tools/*.sh .ci/run
	clang-format --dry-run --Werror src/*.c src/*/*.c src/*/*.h tests/unit/*.c

format:
	clang-format -i src/*.c src/*/*.c src/*/*.h tests/unit/*.c

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
