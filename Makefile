# stratq build. `make` builds build/stratq; `make test` builds a sanitized
# copy (build/asan/stratq) and runs the unit and integration tests with it.

CC ?= cc
# The libraries' flags come from pkg-config, asked the first time a recipe
# needs them (not when the Makefile is read: `make demo` and `make test`
# install the -dev packages first). A missing library stops the build with
# its name and the package to install, never with an empty flag.
# Two programs, each linking only what it uses (docs/architecture.md, "Only
# what a process needs"): build/stratq (the API, the worker's supervisor,
# `stratq up`, the CLI) links PKGS; build/stratq-executor, the one process
# that embeds CPython, links EXEC_PKGS.
PKGS := hiredis libevent libevent_openssl openssl jansson libcurl libseccomp
EXEC_PKGS := jansson libseccomp python3-embed
pkg_missing = $(shell command -v pkg-config >/dev/null || echo pkg-config; \
	for m in $(1); do pkg-config --exists $$m 2>/dev/null || echo $$m; done)
pkg_flags = $(if $(strip $(call pkg_missing,$(2))),$(error pkg-config finds no $(strip $(call pkg_missing,$(2))): \
	run `make deps` (as root it installs them; otherwise it prints the apt-get command), \
	or install build-essential pkg-config libhiredis-dev libevent-dev libjansson-dev \
	libcurl4-openssl-dev libssl-dev libpython3-dev libseccomp-dev),$(shell pkg-config $(1) $(2)))
# Memoized: pkg-config runs once per make, at the first use.
PKG_CFLAGS = $(eval PKG_CFLAGS := $(call pkg_flags,--cflags,$(PKGS)))$(PKG_CFLAGS)
# libcurl is not linked: the CLI loads it when it first speaks HTTP
# (src/cli/curl_load.c), so that the API and the workers do not carry it
# (dlopen is in glibc itself since 2.34).
PKG_LIBS = $(eval PKG_LIBS := $(call pkg_flags,--libs,$(filter-out libcurl,$(PKGS))) -lm)$(PKG_LIBS)
PY_CFLAGS = $(eval PY_CFLAGS := $(call pkg_flags,--cflags,python3-embed))$(PY_CFLAGS)
EXEC_LIBS = $(eval EXEC_LIBS := $(call pkg_flags,--libs,$(EXEC_PKGS)) -lm)$(EXEC_LIBS)

WARN := -Wall -Wextra -Werror -Wshadow -Wmissing-prototypes -Wstrict-prototypes -Wformat=2 \
        -Wno-format-nonliteral
BASE_CFLAGS = -std=c11 -g $(WARN) $(PKG_CFLAGS) -Isrc
RELEASE_CFLAGS := -O2
# Full RELRO and every symbol bound at start: the GOT is read-only, and a
# job child forked from the executor never resolves a symbol lazily (a
# lookup in ld.so and a copy-on-write fault per first call; about 300 µs
# of a sandboxed child's set-up on the development host, make bench-sandbox).
LINK_FLAGS := -Wl,-z,relro,-z,now
ASAN_CFLAGS := -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
PYTHON ?= /usr/bin/python3

LUA := $(sort $(wildcard src/queue/lua/*.lua))
# The dashboard's static files, embedded into the binary (tools/embed_web.sh).
WEB := $(sort $(wildcard web/*.html web/*.js web/*.css web/*.svg))
# The executor program's own modules (only they call into libpython), and
# the shared ones it links besides (neither libcurl, libevent, OpenSSL nor
# hiredis is among their libraries).
EXEC_SRC := src/executor_main.c src/worker/executor.c src/worker/warm.c
EXEC_LIB_SRC := $(sort $(wildcard src/common/*.c)) src/queue/status.c \
                $(addprefix src/worker/,capture.c cgroup.c dirsize.c launch.c outcome.c sandbox.c)
LIB_SRC := $(filter-out $(EXEC_SRC),$(sort $(wildcard src/common/*.c src/queue/*.c src/api/*.c src/worker/*.c src/cli/*.c)))
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

REL_OBJ := $(call objs,build,$(LIB_SRC)) build/obj/gen/lua.o build/obj/gen/web.o
ASAN_OBJ := $(call objs,build/asan,$(LIB_SRC)) build/asan/obj/gen/lua.o build/asan/obj/gen/web.o
REL_EXEC_OBJ := $(call objs,build,$(EXEC_SRC) $(EXEC_LIB_SRC))
ASAN_EXEC_OBJ := $(call objs,build/asan,$(EXEC_SRC) $(EXEC_LIB_SRC))

.PHONY: images compose-test all install deps deps-test deps-bench fresh-check test unit integration deploy-test browser-test demo bench bench-api bench-datasets bench-exec bench-sandbox bench-protocol bench-json bench-fair fuzz fuzz-smoke clean lint format chaos chaos-failover soak
all: build/stratq

# The Debian packages each goal needs (scripts/deps.sh): `make deps` what
# building and `make demo` need; `make deps-test` and `make deps-bench` what
# the tests and the benchmarks add. `make demo`, `make test` and `make bench`
# run theirs first and only then read the build's flags (in a second make).
deps:
	@sh scripts/deps.sh demo
deps-test:
	@sh scripts/deps.sh test
deps-bench:
	@sh scripts/deps.sh bench

build/gen/lua.c: $(LUA) tools/embed.sh
	@mkdir -p $(@D)
	$(call say,GEN)sh tools/embed.sh $@ lua $(LUA)

build/obj/gen/lua.o: build/gen/lua.c
	@mkdir -p $(@D)
	$(call say,CC)$(CC) $(BASE_CFLAGS) $(RELEASE_CFLAGS) -Wno-missing-variable-declarations -c $< -o $@
build/asan/obj/gen/lua.o: build/gen/lua.c
	@mkdir -p $(@D)
	$(call say,CC)$(CC) $(BASE_CFLAGS) $(ASAN_CFLAGS) -c $< -o $@

build/gen/web.c: $(WEB) tools/embed_web.sh $(wildcard web)
	@mkdir -p $(@D)
	$(call say,GEN)sh tools/embed_web.sh $@ $(WEB)

build/obj/gen/web.o: build/gen/web.c src/api/ui.h
	@mkdir -p $(@D)
	$(call say,CC)$(CC) $(BASE_CFLAGS) $(RELEASE_CFLAGS) -c $< -o $@
build/asan/obj/gen/web.o: build/gen/web.c src/api/ui.h
	@mkdir -p $(@D)
	$(call say,CC)$(CC) $(BASE_CFLAGS) $(ASAN_CFLAGS) -c $< -o $@

build/obj/%.o: src/%.c
	@mkdir -p $(@D)
	$(call say,CC)$(CC) $(BASE_CFLAGS) $(RELEASE_CFLAGS) -MMD -MP -c $< -o $@
build/asan/obj/%.o: src/%.c
	@mkdir -p $(@D)
	$(call say,CC)$(CC) $(BASE_CFLAGS) $(ASAN_CFLAGS) -MMD -MP -c $< -o $@
# Python.h: warm.c alone includes it.
build/obj/worker/warm.o build/asan/obj/worker/warm.o: BASE_CFLAGS += $(PY_CFLAGS)

# `stratq` and the executor program it runs (found beside it, src/worker/launch.c)
# are built together: `make build/stratq` makes both, and so does every goal
# that needs build/stratq. The sanitized pair lives in build/asan/.
build/stratq: $(REL_OBJ) build/obj/main.o | build/stratq-executor
	$(call say,CC)$(CC) $(RELEASE_CFLAGS) $(LINK_FLAGS) $^ $(PKG_LIBS) -o $@
build/stratq-executor: $(REL_EXEC_OBJ)
	$(call say,CC)$(CC) $(RELEASE_CFLAGS) $(LINK_FLAGS) $^ $(EXEC_LIBS) -o $@
build/asan/stratq: $(ASAN_OBJ) build/asan/obj/main.o | build/asan/stratq-executor
	$(call say,CC)$(CC) $(ASAN_CFLAGS) $(LINK_FLAGS) $^ $(PKG_LIBS) -o $@
build/asan/stratq-executor: $(ASAN_EXEC_OBJ)
	$(call say,CC)$(CC) $(ASAN_CFLAGS) $(LINK_FLAGS) $^ $(EXEC_LIBS) -o $@

# `make install`: both programs into $(DESTDIR)$(PREFIX)/bin (the executor
# must be beside stratq) and the harness into share/stratq/python, where
# stratq looks by itself (<bindir>/../share/stratq/python).
PREFIX ?= /usr/local
install: build/stratq
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/stratq/python/stratq
	install -m 0755 build/stratq build/stratq-executor $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 python/stratq/*.py $(DESTDIR)$(PREFIX)/share/stratq/python/stratq/

build/asan/unit/%: tests/unit/%.c $(ASAN_OBJ)
	@mkdir -p $(@D)
	$(call say,CC)$(CC) $(BASE_CFLAGS) $(ASAN_CFLAGS) $^ $(PKG_LIBS) $(UNIT_LIBS) -lcmocka -o $@
# warm.c is the executor's alone (it calls into libpython): its test links
# it, and libpython with it.
build/asan/unit/test_warm: build/asan/obj/worker/warm.o
build/asan/unit/test_warm: UNIT_LIBS = $(EXEC_LIBS)

UNIT_BIN := $(patsubst tests/unit/%.c,build/asan/unit/%,$(UNIT_SRC))

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done
	$(PYTHON) -m pytest -q tests/python

# The whole suite runs in warm mode (the default); the modules whose outcome
# depends on how a job's interpreter is made (worker, executor, isolation,
# reliability, examples, sandbox, SDK) run again in cold mode, which must
# give the same outcomes; the API, CLI and protocol modules do not. Workers
# preload numpy and pandas only in the modules where a job's imports matter
# (tests/integration/conftest.py, PRELOAD_MODULES). Last, the attack
# suite runs twice more with the worker as uid 65534: with only the layers
# that need no privilege, as in an unprivileged Kubernetes pod
# (STRATQ_SANDBOX_DISABLE=namespaces,cgroup), and with the namespaces a
# non-root worker makes through a user namespace (tests/integration/test_sandbox.py).
# The suites run three files at a time (pytest-xdist, python3-pytest-xdist):
# (the tests marked `alone`, whose outcome needs more than one free core,
# run after that, one at a time)
# a test mostly waits on processes and jobs, so three share 2 cores well
# (the warm suite: 7.2 min one at a time, 3 min so). A file's tests stay
# together, in order, on one process with its own redis-server.
PYTEST_PAR ?= -n 3 --dist loadfile
COLD_TESTS := $(addprefix tests/integration/,test_worker.py test_executor.py test_isolation.py \
              test_reliability.py test_examples.py test_sandbox.py test_sandbox_layers.py test_sdk.py)

# Deployment files (tests/deploy): the Dockerfile, the Compose file (checked by
# `docker-compose config`), the Kubernetes and KEDA manifests (built with
# kustomize's library and decoded strictly into the official Go types by
# tests/deploy/kubecheck, built with Debian's Go and the Go module proxy), and
# scripts/scale-workers.sh and monitor-workers.sh (with fake docker/kubectl,
# and for real on a local stack). No container engine or cluster needed.
deploy-test: deps-test build/stratq
	STRATQ_SCRIPTS_BIN=$(CURDIR)/build/stratq $(PYTHON) -m pytest -q tests/deploy

# `make browser-test`: the dashboard in Debian's headless Chromium, driven over
# the DevTools protocol with python3-websocket (tests/browser); screenshots
# into docs/img/.
browser-test: build/stratq
	@sh scripts/deps.sh browser
	$(PYTHON) tests/browser/run.py --bin $(CURDIR)/build/stratq --out $(CURDIR)/docs/img

# test_sandbox.py runs in four passes (warm and cold as root, always-on,
# userns; tests/sandbox/README.md), then its signal attacks once more with
# Landlock's signal scoping off: seccomp alone must keep the job's signals in.
integration: build/asan/stratq
	STRATQ_MODE=warm STRATQ_BIN=$(CURDIR)/build/asan/stratq $(PYTHON) -m pytest -q $(PYTEST_PAR) -m "not alone" tests/integration
	STRATQ_MODE=cold STRATQ_BIN=$(CURDIR)/build/asan/stratq $(PYTHON) -m pytest -q $(PYTEST_PAR) -m "not alone" $(COLD_TESTS)
	STRATQ_MODE=warm STRATQ_BIN=$(CURDIR)/build/asan/stratq $(PYTHON) -m pytest -q -m alone tests/integration
	STRATQ_MODE=cold STRATQ_BIN=$(CURDIR)/build/asan/stratq $(PYTHON) -m pytest -q -m alone $(COLD_TESTS)
	STRATQ_TEST_SANDBOX=always-on STRATQ_MODE=warm STRATQ_BIN=$(CURDIR)/build/asan/stratq \
		$(PYTHON) -m pytest -q tests/integration/test_sandbox.py
	STRATQ_TEST_SANDBOX=userns STRATQ_MODE=warm STRATQ_BIN=$(CURDIR)/build/asan/stratq \
		$(PYTHON) -m pytest -q tests/integration/test_sandbox.py
	STRATQ_TEST_SANDBOX=always-on STRATQ_TEST_SANDBOX_DISABLE=signal_scope STRATQ_MODE=warm \
		STRATQ_BIN=$(CURDIR)/build/asan/stratq $(PYTHON) -m pytest -q tests/integration/test_sandbox.py \
		-k "kill_parent or signal_routes or syscalls_via_ctypes or stop_next_spare or reports_its_sandbox"

# `make images`: debian:bookworm-slim from Debian's archive when the engine
# lacks it (debootstrap, docker import), then stratq:dev and stratq-redis:dev
# (scripts/images.sh). No registry needed.
images:
	@sh scripts/images.sh

# `make compose-test`: the dev stack of config/dev/docker-compose.yaml on the
# real Docker Engine, driven by the guide's commands (tests/compose). Part of
# `make test` whenever `docker info` answers.
compose-test: deps-test images
	$(PYTHON) -m pytest -q tests/compose

test: deps-test
	$(MAKE) unit
	$(MAKE) deploy-test
	$(MAKE) fuzz-smoke
	$(MAKE) integration
	$(MAKE) browser-test
	@if docker info >/dev/null 2>&1; then $(MAKE) compose-test; \
	else echo "make test: no Docker Engine answers (docker info): compose-test skipped"; fi

demo: deps
	@$(MAKE) --no-print-directory build/stratq
	@sh scripts/demo.sh

# `make bench`: stratq warm/cold vs RQ 1.13 and Celery 5.2 (1, 2, 4 workers and up to
# nproc): jobs/s, latency, RSS, Redis commands per job, API submit rate vs
# redis-benchmark; writes docs/benchmarks.md and docs/img/bench-*.png; stops itself
# within 15 min (bench/suite.py). `make bench-protocol` (the Redis protocol
# alone, about 80 s) is separate, to keep this within its 15 minutes.
bench: deps-bench
	@$(MAKE) --no-print-directory build/stratq
	@sh scripts/bench.sh

# `make chaos`: 3 workers, 2,000 short jobs and 20 of 1-3 s, a worker or an
# executor SIGKILLed every 1-3 s and redis-server restarted once; checks that
# every job succeeded once as recorded and none was lost (tests/chaos/chaos.py;
# CHAOS_FLAGS passes options such as --seed). A short version runs in `make test`.
CHAOS_FLAGS ?=
chaos: deps-test build/stratq
	$(PYTHON) tests/chaos/chaos.py --bin $(CURDIR)/build/stratq $(CHAOS_FLAGS)

# `make chaos-failover`: a Redis primary SIGKILLed under steady submits, with
# 2 replicas and 3 sentinels (tests/chaos/failover.py): with
# STRATQ_REDIS_MIN_REPLICAS=1 every acknowledged job must succeed once (exit
# 1 otherwise); with 0 what is lost is printed, not judged. Each setting
# runs twice: a plain SIGKILL, and one after a second in which no replica
# got the primary's writes (--cut 1). About 25 s a run. FAILOVER_FLAGS
# passes options such as --before, --after, --clients.
FAILOVER_FLAGS ?=
chaos-failover: deps-test build/stratq
	$(PYTHON) tests/chaos/failover.py --bin $(CURDIR)/build/stratq --min-replicas 1 $(FAILOVER_FLAGS)
	$(PYTHON) tests/chaos/failover.py --bin $(CURDIR)/build/stratq --min-replicas 1 --cut 1 $(FAILOVER_FLAGS)
	$(PYTHON) tests/chaos/failover.py --bin $(CURDIR)/build/stratq --min-replicas 0 $(FAILOVER_FLAGS)
	$(PYTHON) tests/chaos/failover.py --bin $(CURDIR)/build/stratq --min-replicas 0 --cut 1 $(FAILOVER_FLAGS)

# `make soak`: a steady mix of jobs for SOAK_MINUTES with occasional kills;
# RSS of the API and each worker must stay flat (< 5% growth after warm-up)
# and their open fds must not grow (tests/chaos/soak.py).
SOAK_MINUTES ?= 30
soak: deps-test build/stratq
	$(PYTHON) tests/chaos/soak.py --bin $(CURDIR)/build/stratq --minutes $(SOAK_MINUTES)

# `make bench-api`: wrk against `stratq api` + its own redis-server, with
# redis-benchmark's rate for the same enqueue script as the ceiling
# (BENCH_TLS=1: both reach Redis over TLS); then again with one replica that
# every submit WAITs for (STRATQ_REDIS_MIN_REPLICAS=1).
bench-api: deps-bench build/stratq
	@sh scripts/bench-api.sh
	@BENCH_REPLICAS=1 sh scripts/bench-api.sh

# `make bench-datasets`: GET /v1/datasets with 10,000 files in the data
# directory: a request's time after a change and back to back, and how long
# a /healthz waits meanwhile (bench/datasets.py; BENCH_DATASETS_FLAGS passes
# options, such as --baseline-bin for an older build measured the same way).
BENCH_DATASETS_FLAGS ?=
bench-datasets: deps-bench build/stratq
	$(PYTHON) bench/datasets.py --bin build/stratq $(BENCH_DATASETS_FLAGS)

# `make bench-exec`: stratq warm, stratq cold and RQ 1.13 (python3-rq) side by
# side, 2 workers each, one redis-server: jobs/s (no-op, small pandas job),
# idle-queue latency, idle worker RSS; writes docs/benchmarks-exec.md.
bench-exec: deps-bench build/stratq
	@sh scripts/bench-exec.sh

# `make bench-sandbox`: the sandbox's set-up cost per job child in µs against a
# bare fork, always-on layers only and every layer the host allows
# (bench/sandbox_cost.c; run as root for the optional layers).
build/bench/sandbox_cost: bench/sandbox_cost.c $(REL_OBJ)
	@mkdir -p $(@D)
	$(call say,LD)$(CC) $(BASE_CFLAGS) $(RELEASE_CFLAGS) $(LINK_FLAGS) $< $(REL_OBJ) $(PKG_LIBS) -o $@
bench-sandbox: deps build/bench/sandbox_cost
	build/bench/sandbox_cost 300 $(CURDIR)/python

# `make bench-protocol`: the Redis protocol alone, no Python: full no-op job
# lifecycles per second that one Redis core sustains, driven through the
# API's and the worker's own typed calls (bench/protocol_load.c), and 1
# against 3 Redis Cluster primaries (bench/protocol.py, about 80 s);
# writes docs/benchmarks-protocol.md.
build/bench/protocol_load: bench/protocol_load.c $(REL_OBJ)
	@mkdir -p $(@D)
	$(call say,LD)$(CC) $(BASE_CFLAGS) $(RELEASE_CFLAGS) $(LINK_FLAGS) -pthread $< $(REL_OBJ) $(PKG_LIBS) -o $@
bench-protocol: deps-bench build/bench/protocol_load
	@sh scripts/bench-protocol.sh

# `make bench-fair`: enqueue and take rates with fair share (1 and 100 tenants)
# side by side with the single FIFO path in the same run (bench/fair.py,
# build/bench/protocol_load --split); writes docs/benchmarks-fair.md.
bench-fair: deps-bench build/bench/protocol_load
	$(PYTHON) bench/fair.py

# `make bench-json`: what one GET of a 16 MiB "[{},{},...]" result costs the
# API (time, peak RSS), and what checking it costs with the validator
# (src/common/jsonv.c) against a jansson parse, side by side
# (bench/json_cost.c, bench/json_get.py). BENCH_JSON_FLAGS passes options,
# such as --baseline-bin for an older build to measure the same way.
BENCH_JSON_FLAGS ?=
build/bench/json_cost: bench/json_cost.c $(REL_OBJ)
	@mkdir -p $(@D)
	$(call say,LD)$(CC) $(BASE_CFLAGS) $(RELEASE_CFLAGS) $(LINK_FLAGS) $< $(REL_OBJ) $(PKG_LIBS) -o $@
bench-json: deps-bench build/stratq build/bench/json_cost
	$(PYTHON) bench/json_get.py --bin build/stratq --cost build/bench/json_cost $(BENCH_JSON_FLAGS)

# libFuzzer targets (tests/fuzz/fuzz_*.c), built with clang into build/fuzz/
# apart from the gcc builds. Each links only the code it fuzzes: src/common
# and the router (not the HTTP server). `make fuzz` runs each for
# FUZZ_SECONDS; `make fuzz-smoke` (part of `make test`) for
# FUZZ_SMOKE_SECONDS. New inputs go to build/fuzz/corpus/<target>, crashes to
# build/fuzz/artifacts/; the seeds in tests/fuzz/corpus/<target> are read only.
FUZZ_CC ?= clang-14
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 8
FUZZ_FLAGS ?=
FUZZ_CFLAGS = -std=c11 -g -O1 $(WARN) $(PKG_CFLAGS) -Isrc -fno-omit-frame-pointer \
               -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
FUZZ_LDFLAGS := -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZ_LIB_SRC := $(sort $(wildcard src/common/*.c)) src/api/router.c
FUZZ_LIB_OBJ := $(call objs,build/fuzz,$(FUZZ_LIB_SRC))
FUZZ_TARGETS := $(patsubst tests/fuzz/%.c,%,$(sort $(wildcard tests/fuzz/fuzz_*.c)))
FUZZ_BIN := $(addprefix build/fuzz/,$(FUZZ_TARGETS))
.SECONDARY: $(FUZZ_LIB_OBJ)

build/fuzz/obj/%.o: src/%.c
	@mkdir -p $(@D)
	$(call say,CC)$(FUZZ_CC) $(FUZZ_CFLAGS) -MMD -MP -c $< -o $@
build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_LIB_OBJ)
	@mkdir -p $(@D)
	$(call say,CC)$(FUZZ_CC) $(FUZZ_CFLAGS) -MMD -MP $< $(FUZZ_LIB_OBJ) $(FUZZ_LDFLAGS) -ljansson -lm -o $@

# $(call run_fuzz,SECONDS): runs every target on its seeds for SECONDS.
define run_fuzz
@set -e; for t in $(FUZZ_TARGETS); do \
	echo "== fuzz $$t ($(1) s)"; \
	mkdir -p build/fuzz/corpus/$$t build/fuzz/artifacts; \
	dict=""; [ -f tests/fuzz/$$t.dict ] && dict="-dict=tests/fuzz/$$t.dict"; \
	build/fuzz/$$t -max_total_time=$(1) -print_final_stats=1 $$dict \
		-artifact_prefix=build/fuzz/artifacts/$$t- $(FUZZ_FLAGS) \
		build/fuzz/corpus/$$t tests/fuzz/corpus/$$t 2>build/fuzz/$$t.log \
		|| { tail -n 60 build/fuzz/$$t.log; echo "fuzz $$t failed: see build/fuzz/$$t.log and build/fuzz/artifacts/"; exit 1; }; \
	grep -E '^#[0-9]+[[:space:]]+DONE|^Done' build/fuzz/$$t.log; \
done
endef

fuzz: deps-test $(FUZZ_BIN)
	$(call run_fuzz,$(FUZZ_SECONDS))

fuzz-smoke: deps-test $(FUZZ_BIN)
	$(call run_fuzz,$(FUZZ_SMOKE_SECONDS))

# Debian 12's clang-format is clang-format-14 (package clang-format-14, in
# the test group); a plain clang-format is taken where there is no -14.
CLANG_FORMAT = $(or $(shell command -v clang-format-14 2>/dev/null),clang-format)

# `make lint` also checks that src/api includes in layers (tools/api_layers.sh).
lint: deps-test
	shellcheck -x scripts/*.sh scripts/lib/*.sh tools/*.sh .ci/run
	yamllint -s config/deploy/k8s config/dev/docker-compose.yaml config/dev/docker-compose.tls.yaml
	$(CLANG_FORMAT) --dry-run --Werror src/*.c src/*/*.c src/*/*.h tests/unit/*.c tests/fuzz/*.c
	sh tools/api_layers.sh

format:
	$(CLANG_FORMAT) -i src/*.c src/*/*.c src/*/*.h tests/unit/*.c tests/fuzz/*.c

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)

# `make fresh-check`: `make demo` and then `make test`, as the README gives
# them, on a pristine Debian 12 root made by debootstrap and run as a Docker
# container; prints how long each took (scripts/fresh-check.sh). Tests the
# committed HEAD (git archive), not the work tree.
fresh-check:
	@sh scripts/fresh-check.sh
