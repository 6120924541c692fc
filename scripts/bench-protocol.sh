#!/bin/sh
# `make bench-protocol`: the Redis protocol alone, no Python (issue 16): full
# no-op job lifecycles per second through stratq's own C calls
# (build/bench/protocol_load), per Redis CPU-second on a single redis-server,
# and 1 against 3 Redis Cluster primaries. bench/protocol.py starts its own
# servers and drivers, stops them by pid, prints the tables and writes
# docs/benchmarks-protocol.md. About 80 s; it stops itself at
# BENCH_DEADLINE_S (240 s) and `timeout` is the backstop.
set -eu
cd "$(dirname "$0")/.."

for tool in redis-server /usr/bin/python3; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "bench-protocol: $tool not found (make deps)" >&2
        exit 1
    }
done
/usr/bin/python3 -c 'import redis' 2>/dev/null || {
    echo "bench-protocol: needs python3-redis (make deps)" >&2
    exit 1
}
[ -x "${STRATQ_PROTOCOL_LOAD:-build/bench/protocol_load}" ] || {
    echo "bench-protocol: ${STRATQ_PROTOCOL_LOAD:-build/bench/protocol_load} not built" \
        "(make build/bench/protocol_load)" >&2
    exit 1
}
exec timeout -k 10 300 /usr/bin/python3 bench/protocol.py "$@"
