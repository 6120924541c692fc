#!/bin/sh
# `make bench-exec`: stratq warm, stratq cold and RQ 1.13 side by side
# (issue 5): jobs/s for a no-op and a small pandas job with 2 workers each,
# latency on an idle queue, idle RSS of a worker. bench/exec.py starts its own
# redis-server, `stratq api` and the workers, stops them (by pid), prints the
# table and writes it to docs/benchmarks-exec.md. Ends in about 4 minutes;
# every wait has a deadline and `timeout` bounds the whole run.
set -eu
cd "$(dirname "$0")/.."

for tool in redis-server /usr/bin/python3; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "bench-exec: $tool not found (make deps)" >&2
        exit 1
    }
done
/usr/bin/python3 -c 'import redis, rq, numpy, pandas' 2>/dev/null || {
    echo "bench-exec: needs python3-redis, python3-rq, python3-numpy, python3-pandas (make deps)" >&2
    exit 1
}
[ -x "${STRATQ_BIN:-build/stratq}" ] || {
    echo "bench-exec: ${STRATQ_BIN:-build/stratq} not built (make)" >&2
    exit 1
}
# bench/exec.py stops itself at BENCH_DEADLINE_S (450 s); this is the backstop.
exec timeout -k 10 500 /usr/bin/python3 bench/exec.py "$@"
