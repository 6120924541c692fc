#!/bin/sh
# `make bench`: stratq warm and cold against RQ 1.13 and Celery 5.2 on this
# machine, in one run: throughput with 1, 2 and 4 workers (and every count up
# to the core count) on a no-op and a small pandas job, submit -> result
# latency on an idle queue, idle and busy RSS per worker, Redis commands per
# job, and the API's submit rate against redis-benchmark's ceiling
# (scripts/bench-api.sh). bench/suite.py starts its own redis-server, `stratq
# api` and workers, stops them by pid, prints the tables and writes
# docs/benchmarks.md and docs/img/bench-*.png. It stops itself at
# BENCH_DEADLINE_S (840 s); `timeout` is the backstop, under 15 minutes.
set -eu
cd "$(dirname "$0")/.."

for tool in redis-server redis-benchmark wrk /usr/bin/python3; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "bench: $tool not found (make deps)" >&2
        exit 1
    }
done
/usr/bin/python3 -c 'import redis, rq, celery, numpy, pandas, matplotlib' 2>/dev/null || {
    echo "bench: needs python3-redis, python3-rq, python3-celery, python3-numpy, python3-pandas," \
        "python3-matplotlib (make deps)" >&2
    exit 1
}
[ -x "${STRATQ_BIN:-build/stratq}" ] || {
    echo "bench: ${STRATQ_BIN:-build/stratq} not built (make)" >&2
    exit 1
}
exec timeout -k 10 880 /usr/bin/python3 bench/suite.py "$@"
