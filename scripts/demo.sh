#!/bin/sh
# `make demo`: starts the local stack (stratq up) in the background, sends the
# example strategies through the real queue, prints a summary of each result
# and stops the stack again. The workers' data directory (STRATQ_DATA_DIR) is
# examples/data, so jobs can read its CSV files with ctx.dataset().
set -eu
cd "$(dirname "$0")/.."
bin=$PWD/build/stratq
py=/usr/bin/python3
state=$PWD/.stratq/demo
mkdir -p "$state"
port=$($py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export STRATQ_API_URL="http://127.0.0.1:$port"

# Absolute: the API, the workers and the jobs (whose working directory is a
# temporary one) all read it.
STRATQ_DATA_DIR=$PWD/examples/data "$bin" up --workers 3 --port "$port" --state-dir "$state" \
    >"$state/up.log" 2>&1 &
up_pid=$!
stop() {
    kill -TERM "$up_pid" 2>/dev/null || true
    wait "$up_pid" 2>/dev/null || true
}
trap stop EXIT
trap 'exit 130' INT TERM

# Wait (at most 60 s) for stratq up to report that the stack is ready.
i=0
until grep -q 'ready:' "$state/up.log" 2>/dev/null; do
    if ! kill -0 "$up_pid" 2>/dev/null || [ $i -ge 600 ]; then
        echo "demo: the local stack did not start; its output:" >&2
        cat "$state/up.log" >&2
        exit 1
    fi
    i=$((i + 1))
    sleep 0.1
done
sed 's/^/  /' "$state/up.log"

section() { printf '\n== %s\n' "$*"; }

# summarize: reads a job record (`stratq result ID --wait --json`) and prints
# its outcome, metrics and parameters instead of the whole equity curve.
summarize() {
    $py -c '
import json, sys, textwrap
job = json.load(sys.stdin)
usage = job.get("usage") or {}
print("job %s: %s in %s ms on %s" % (job["id"], job["status"], usage.get("wall_ms"), job["worker"]))
r = job.get("result")
if job["status"] != "succeeded":
    e = job.get("error") or {}
    print("  error: %s: %s" % (e.get("type"), e.get("message")))
elif not isinstance(r, dict) or "stratq_result" not in r:
    print("  result: " + json.dumps(r))
else:
    def num(k, v):
        if v is None:
            return "-"
        if k in ("total_return", "cagr", "max_drawdown"):
            return "%+.2f%%" % (100 * v)
        if k in ("annual_volatility", "win_rate"):
            return "%.2f%%" % (100 * v)
        return "%.3f" % v if isinstance(v, float) else str(v)
    m = r["metrics"]
    print(textwrap.fill(" ".join("%s=%s" % (k, num(k, v)) for k, v in m.items()), 100,
                        initial_indent="  metrics: ", subsequent_indent=" " * 11))
    eq = r["equity"]
    print("  equity:  %d points, %g on %s -> %g on %s; %d trades"
          % (eq["n"], eq["v"][0], eq["t"][0], eq["v"][-1], eq["t"][-1], r["n_trades"]))
    extra = dict(r["extra"])
    reb = extra.pop("rebalances", None)
    extra.pop("symbols", None)
    print("  params:  " + " ".join("%s=%s" % kv for kv in extra.items()))
    if reb:
        last = reb[-1]
        print("  %d rebalances; the last, on %s: %s" % (len(reb), last["date"], " ".join(
            "%s %+.3f" % kv for kv in sorted(last["weights"].items(), key=lambda kv: -kv[1]))))
'
}

# run_job ARGS...: submits ARGS with `stratq submit`, waits, summarizes the
# result and shows the job's log lines (ctx.log, printed by `stratq logs`).
run_job() {
    id=$("$bin" submit "$@")
    "$bin" result "$id" --wait --json | summarize
    "$bin" logs "$id" 2>&1 | sed 's/^/  /'
}

section "hello: the smallest strategy"
"$bin" submit examples/hello.py --params '{"name": "newcomer"}' --wait

section "datasets the workers can read (GET /v1/datasets, from STRATQ_DATA_DIR)"
$py -c '
import json, os, urllib.request
with urllib.request.urlopen(os.environ["STRATQ_API_URL"] + "/v1/datasets") as f:
    for d in json.load(f)["datasets"]:
        print("  %-10s %-14s %6d bytes" % (d["name"], d["file"], d["size"]))'

section "moving-average crossover, prices sent with the job (--data examples/data/prices.csv)"
run_job examples/ma_crossover.py --data examples/data/prices.csv --params '{"fast": 20, "slow": 50}'

section "the same, read by the job from the data directory (params {\"dataset\": \"prices\"})"
run_job examples/ma_crossover.py --params '{"fast": 20, "slow": 50, "dataset": "prices"}'

section "Bollinger-band mean reversion"
run_job examples/mean_reversion.py --data examples/data/prices.csv --params '{"window": 20, "k": 2}'

section "cross-sectional momentum over 8 symbols (--data examples/data/universe.csv), long the top 2"
run_job examples/momentum.py --data examples/data/universe.csv \
    --params '{"lookback": 60, "top_k": 2, "rebalance": 20}'

section "momentum long/short: top 2 long, bottom 2 short, universe from the data directory"
run_job examples/momentum.py --params '{"dataset": "universe", "top_k": 2, "bottom_k": 2}'

section "parameter sweep: 9 crossover jobs in one batch (examples/sweep.py, the Python client)"
$py examples/sweep.py

section "a strategy that raises: the job fails and the error comes back (exit status 1)"
"$bin" submit examples/ma_crossover.py --data examples/data/prices.csv \
    --params '{"fast": 50, "slow": 20}' --wait || true

section "queue"
"$bin" queue
