#!/bin/sh
# `make bench-api`: submit throughput of the HTTP API against Redis's own
# ceiling for the same enqueue script, in one run on this machine.
#
# Starts its own redis-server (loopback, free port, no persistence) and
# `build/stratq api` against it, with no workers: jobs pile up in the queue.
#   1. wrk, BENCH_THREADS threads and BENCH_CONNS keep-alive connections for
#      BENCH_SECONDS, posting a small strategy job to POST /v1/jobs
#      (bench/api_submit.lua): submits/s, p50, p99.
#   2. redis-benchmark replaying the exact EVALSHA the API sent for one submit
#      (captured with MONITOR; bench/api_capture.py), a fresh id per call,
#      pipelined (-P 16) and not (-P 1, like HTTP/1.1 keep-alive).
# Prints a table and whether the issue's targets are met; never fails on
# them. Stops everything it started (by pid) and ends in under 2 minutes.
#
# BENCH_REPLICAS=N: N replicas of the redis-server (loopback, --replicaof)
# and STRATQ_REDIS_MIN_REPLICAS=N for the API, so that every submit WAITs
# for them before it is acknowledged: the cost of that guarantee. `make
# bench-api` runs it with 0 and with 1.
#
# BENCH_TLS=1: the API and redis-benchmark reach Redis over TLS (a TLS port
# beside the plaintext one, which MONITOR and the bookkeeping keep using;
# certificates from tests/integration/tlsredis.py, no client certificate).
set -eu
cd "$(dirname "$0")/.."

BIN=${STRATQ_BIN:-build/stratq}
SECONDS_RUN=${BENCH_SECONDS:-10}
THREADS=${BENCH_THREADS:-2}
CONNS=${BENCH_CONNS:-64}
RB_N=${BENCH_RB_REQUESTS:-200000}
TARGET_RATE=20000
TARGET_RATIO=0.35
TLS=${BENCH_TLS:-0}
REPLICAS=${BENCH_REPLICAS:-0}

tools="wrk redis-server redis-cli redis-benchmark curl python3"
[ "$TLS" = 1 ] && tools="$tools openssl /usr/bin/python3"
for tool in $tools; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "bench-api: $tool not found (make deps)" >&2
        exit 1
    }
done
[ -x "$BIN" ] || {
    echo "bench-api: $BIN not built (make)" >&2
    exit 1
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/stratq-bench-api.XXXXXX")
redis_pid=""
api_pid=""
mon_pid=""
replica_pids=""
stop() {
    for p in $mon_pid $api_pid $replica_pids $redis_pid; do
        kill "$p" 2>/dev/null || true
    done
    for p in $mon_pid $api_pid $replica_pids $redis_pid; do
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap stop EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_until SECONDS COMMAND...: retries COMMAND every 50 ms.
wait_until() {
    n=$(($1 * 20))
    shift
    while [ "$n" -gt 0 ]; do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.05
        n=$((n - 1))
    done
    return 1
}

rport=$(free_port)
aport=$(free_port)
rcli() { timeout 10 redis-cli -h 127.0.0.1 -p "$rport" "$@"; }

# Over TLS: the API's URL, and the port and options (eval'd, quoted) with
# which redis-benchmark reaches Redis the same way; "$@": redis-server's TLS port.
redis_url="redis://127.0.0.1:$rport"
rb_port=$rport
rb_tls=""
set --
if [ "$TLS" = 1 ]; then
    ca_cert="" server_cert="" server_key=""
    # /usr/bin/python3: the module imports redis-py (python3-redis), as bench-exec.sh's.
    pki=$(/usr/bin/python3 tests/integration/tlsredis.py "$tmp/pki") || {
        echo "bench-api: could not make the TLS certificates (needs openssl and python3-redis)" >&2
        exit 1
    }
    eval "$pki"
    rb_port=$(free_port)
    redis_url="rediss://127.0.0.1:$rb_port"
    rb_tls="--tls --cacert '$ca_cert'"
    set -- --tls-port "$rb_port" --tls-cert-file "$server_cert" --tls-key-file "$server_key" \
        --tls-ca-cert-file "$ca_cert" --tls-auth-clients no
    export STRATQ_REDIS_CACERT="$ca_cert"
fi

redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$tmp" --logfile "$tmp/redis.log" "$@" &
redis_pid=$!
wait_until 5 rcli ping || {
    echo "bench-api: redis-server did not start" >&2
    cat "$tmp/redis.log" >&2
    exit 1
}

i=0
while [ "$i" -lt "$REPLICAS" ]; do
    i=$((i + 1))
    p=$(free_port)
    mkdir -p "$tmp/replica$i"
    redis-server --port "$p" --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp/replica$i" \
        --logfile "$tmp/replica$i/redis.log" --replicaof 127.0.0.1 "$rport" &
    replica_pids="$replica_pids $!"
done
if [ "$REPLICAS" -gt 0 ]; then
    # Online: past the first full sync (diskless, after a few seconds' delay).
    wait_until 30 sh -c "[ \$(timeout 5 redis-cli -h 127.0.0.1 -p $rport info replication | grep -c 'state=online') -ge $REPLICAS ]" || {
        echo "bench-api: the $REPLICAS replicas did not connect" >&2
        exit 1
    }
fi
STRATQ_REDIS_MIN_REPLICAS=$REPLICAS STRATQ_LOG_LEVEL=warn "$BIN" api --bind 127.0.0.1 --port "$aport" \
    --redis-url "$redis_url" 2>"$tmp/api.log" &
api_pid=$!
url="http://127.0.0.1:$aport"
wait_until 10 curl -sf --noproxy '*' "$url/healthz" || {
    echo "bench-api: stratq api did not answer /healthz" >&2
    cat "$tmp/api.log" >&2
    exit 1
}

# One submit by hand, with MONITOR on, to check the route and capture the
# Redis commands it costs.
# Started directly (not through rcli) so that $! is the process to stop.
timeout 10 redis-cli -h 127.0.0.1 -p "$rport" monitor >"$tmp/monitor" 2>/dev/null &
mon_pid=$!
sleep 0.3
code=$(curl -s --noproxy '*' -o "$tmp/submit.json" -w '%{http_code}' -X POST \
    -H 'Content-Type: application/json' \
    --data-binary '{"code":"def run(ctx):\n    return 1\n"}' "$url/v1/jobs") || code=000
sleep 0.3
kill "$mon_pid" 2>/dev/null || true
wait "$mon_pid" 2>/dev/null || true
mon_pid=""
job_id=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1])).get("id", ""))' \
    "$tmp/submit.json" 2>/dev/null || true)
case $code in
2??) ;;
*)
    echo "bench-api: WARNING: POST /v1/jobs answered $code: $(head -c 300 "$tmp/submit.json" 2>/dev/null)" >&2
    ;;
esac
[ -n "$job_id" ] || echo "bench-api: WARNING: POST /v1/jobs returned no job id" >&2

# --- 1. wrk against the API ------------------------------------------------
rcli flushall >/dev/null
echo "bench-api: wrk -t$THREADS -c$CONNS -d${SECONDS_RUN}s POST $url/v1/jobs" >&2
timeout $((SECONDS_RUN + 30)) wrk -t"$THREADS" -c"$CONNS" -d"${SECONDS_RUN}s" --timeout 5s \
    -s bench/api_submit.lua "$url/v1/jobs" >"$tmp/wrk.out" 2>&1 || {
    echo "bench-api: wrk failed:" >&2
    cat "$tmp/wrk.out" >&2
    exit 1
}
line=$(grep '^BENCH ' "$tmp/wrk.out" || true)
[ -n "$line" ] || {
    echo "bench-api: wrk printed no summary:" >&2
    cat "$tmp/wrk.out" >&2
    exit 1
}
queued=$(rcli llen python_execution_queue)
kill -0 "$api_pid" 2>/dev/null || {
    echo "bench-api: stratq api died during the wrk run:" >&2
    tail -n 30 "$tmp/api.log" >&2
    exit 1
}

# --- 2. redis-benchmark ceiling ------------------------------------------------
rb_src="captured from the API"
if [ -n "$job_id" ] && rbargs=$(python3 bench/api_capture.py "$tmp/monitor" "$job_id" \
    "$tmp/script.lua" 2>"$tmp/capture.err"); then
    if [ -s "$tmp/script.lua" ]; then
        sha=$(rcli -x script load <"$tmp/script.lua")
        rbargs=$(printf '%s\n' "$rbargs" | sed "s/@SHA@/$sha/")
    fi
else
    # The API's submit could not be captured: build the script as
    # src/queue/queue.c does (lib.lua, a newline, enqueue.lua) with the
    # arguments the protocol documents.
    rb_src="built from src/queue/lua (API capture failed)"
    {
        [ -f src/queue/lua/lib.lua ] && cat src/queue/lua/lib.lua && echo
        cat src/queue/lua/enqueue.lua
    } >"$tmp/script.lua"
    sha=$(rcli -x script load <"$tmp/script.lua")
    rbargs="EVALSHA $sha 3 stratq:{python_execution_queue}:job:__rand_int__ python_execution_queue stratq:{python_execution_queue}:index:all __rand_int__ '{\"code\":\"x\"}' 1 stratq:{python_execution_queue}:events 0"
fi
cat "$tmp/capture.err" >&2 2>/dev/null || true
printf 'bench-api: redis-benchmark command (%s): %s\n' "$rb_src" "$rbargs" >&2

# -r must fit in an int (redis-benchmark ignores larger values); each
# __rand_int__ gets its own number, so the job key and the queued id differ,
# which costs Redis the same.
# rb PIPELINE: prints "rps p50_ms p99_ms jobs_enqueued".
rb() {
    pipeline=$1
    rcli flushall >/dev/null
    eval "set -- $rb_tls $rbargs"
    timeout 60 redis-benchmark -h 127.0.0.1 -p "$rb_port" -c "$CONNS" -n "$RB_N" -r 1000000000 \
        -P "$pipeline" --csv "$@" >"$tmp/rb.csv" 2>"$tmp/rb.err" || {
        echo "bench-api: redis-benchmark -P $pipeline failed:" >&2
        cat "$tmp/rb.err" "$tmp/rb.csv" >&2
        echo "0 0 0 0"
        return 0
    }
    # "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms",
    # "p99_latency_ms","max_latency_ms"; the test name (the command) may hold commas.
    tail -n 1 "$tmp/rb.csv" | tr -d '"' |
        awk -F, -v q="$(rcli llen python_execution_queue)" '{print $(NF-6), $(NF-3), $(NF-1), q}'
}
read -r rb16_rps rb16_p50 rb16_p99 rb16_q <<EOF || true
$(rb 16)
EOF
read -r rb1_rps rb1_p50 rb1_p99 rb1_q <<EOF || true
$(rb 1)
EOF

# --- report ----------------------------------------------------------------
# wrk's line is "BENCH requests=N duration_us=N p50_us=N ..." (bench/api_submit.lua).
python3 - "$line" "$queued" "${rb16_rps:-0}" "${rb16_p50:-0}" "${rb16_p99:-0}" "${rb16_q:-0}" \
    "${rb1_rps:-0}" "${rb1_p50:-0}" "${rb1_p99:-0}" "${rb1_q:-0}" "$RB_N" "$TARGET_RATE" "$TARGET_RATIO" \
    "$THREADS" "$CONNS" "$SECONDS_RUN" "$TLS" "$REPLICAS" <<'PY'
import sys
(line, queued, r16, r16p50, r16p99, r16q, r1, r1p50, r1p99, r1q, rbn, trate, tratio,
 threads, conns, secs, tls, replicas) = sys.argv[1:]
w = dict(kv.split("=", 1) for kv in line.split()[1:])
reqs, dur = int(w["requests"]), int(w["duration_us"]) / 1e6
errors = sum(int(w[k]) for k in ("status_errors", "connect_errors", "read_errors",
                                 "write_errors", "timeouts"))
ok = reqs - int(w["status_errors"])
rate = ok / dur if dur else 0.0
r16, r1 = float(r16), float(r1)
ms = lambda us: int(us) / 1000.0
print()
print(f"stratq bench-api: POST /v1/jobs, wrk -t{threads} -c{conns} -d{secs}s (keep-alive), "
      "no workers; ceiling: redis-benchmark, same EVALSHA, -c " + conns
      + ("; Redis over TLS (rediss://) for both" if tls == "1" else "")
      + (f"; every submit WAITs for {replicas} replica(s) (STRATQ_REDIS_MIN_REPLICAS)"
         if replicas != "0" else ""))
print()
print(f"{'what':<44} {'submits/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
api_name = "stratq api (wrk, HTTP)" + (f", WAIT {replicas}" if replicas != "0" else "")
print(f"{api_name:<44} {rate:>10.0f} {ms(w['p50_us']):>8.2f} {ms(w['p99_us']):>8.2f}")
print(f"{'redis-benchmark EVALSHA enqueue -P 16':<44} {r16:>10.0f} {float(r16p50):>8.2f} {float(r16p99):>8.2f}")
print(f"{'redis-benchmark EVALSHA enqueue -P 1':<44} {r1:>10.0f} {float(r1p50):>8.2f} {float(r1p99):>8.2f}")
print()
ratio16 = rate / r16 if r16 else 0.0
ratio1 = rate / r1 if r1 else 0.0
print(f"ratio stratq / ceiling (-P 16): {ratio16:.3f}")
print(f"ratio stratq / redis-benchmark -P 1: {ratio1:.3f}")
print(f"wrk: {reqs} responses, {int(w['status_errors'])} non-2xx, "
      f"{errors - int(w['status_errors'])} socket errors; queue length after: {queued}")
print(f"redis-benchmark: {rbn} calls; jobs enqueued: {r16q} (-P 16), {r1q} (-P 1)")
notes = []
if int(w["status_errors"]):
    notes.append(f"{w['status_errors']} of {reqs} submits got a non-2xx answer: the route misbehaves")
if errors - int(w["status_errors"]):
    notes.append(f"{errors - int(w['status_errors'])} socket errors or timeouts in wrk")
# Submits still in flight when wrk stops are enqueued but not counted.
if not ok * 0.99 <= int(queued) <= reqs + int(conns):
    notes.append(f"queue holds {queued} jobs but wrk counted {ok} successful submits")
for name, q in (("-P 16", r16q), ("-P 1", r1q)):
    if int(q) < int(rbn) * 0.99:
        notes.append(f"redis-benchmark {name} enqueued only {q} of {rbn} (errors? the rate is not a ceiling)")
for n in notes:
    print("WARNING: " + n)
print()
met = lambda b: "met" if b else "NOT met"
print(f"target >= {int(trate)} submits/s: {rate:.0f} -> {met(rate >= float(trate))}")
print(f"target >= {tratio} of the ceiling: {ratio16:.3f} -> {met(ratio16 >= float(tratio))}")
PY
