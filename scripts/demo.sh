#!/bin/sh
# `make demo`: starts the local stack (stratq up) in the background, sends the
# example strategies through the real queue, prints their results and stops
# the stack again.
set -eu
cd "$(dirname "$0")/.."
bin=$PWD/build/stratq
state=$PWD/.stratq/demo
mkdir -p "$state"
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export STRATQ_API_URL="http://127.0.0.1:$port"

"$bin" up --workers 3 --port "$port" --state-dir "$state" >"$state/up.log" 2>&1 &
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

section "hello: the smallest strategy"
"$bin" submit examples/hello.py --params '{"name": "newcomer"}' --wait

section "moving-average crossover (pandas) on examples/data/prices.json"
"$bin" submit examples/ma_crossover.py --data examples/data/prices.json \
    --params '{"fast": 20, "slow": 50}' --wait

section "Bollinger-band mean reversion"
"$bin" submit examples/mean_reversion.py --data examples/data/prices.json --wait

section "three crossover variants at once, spread over the workers"
ids=""
for p in '{"fast": 5, "slow": 20}' '{"fast": 10, "slow": 40}' '{"fast": 30, "slow": 90}'; do
    id=$("$bin" submit examples/ma_crossover.py --data examples/data/prices.json --params "$p")
    echo "submitted $id with $p"
    ids="$ids $id"
done
for id in $ids; do
    "$bin" result "$id" --wait --json | /usr/bin/python3 -c '
import json, sys
job = json.load(sys.stdin)
r, p = job["result"] or {}, job["spec"]["params"]
print("%s %s on %s: fast=%s slow=%s total_return=%s sharpe=%s" % (job["id"], job["status"],
      job["worker"], p["fast"], p["slow"], r.get("total_return"), r.get("sharpe")))'
done

section "queue"
"$bin" queue
