"""`make bench-json`: what one GET of a large result costs the API, and what
checking such a result costs, with the validator against a jansson parse,
side by side in one run (issue 18, item 11, "Amplification").

  1. build/bench/json_cost (bench/json_cost.c) on a 16 MiB "[{},{},...]"
     (5.6 million values): jsonv_check() with no limits and with the
     executor's caps, and json_loadb(), each in a child of its own: median
     time of 5 runs, and how far the child's peak RSS rose.
  2. A redis-server (loopback, free port, no persistence) and `stratq api`
     against it (--bin, default build/stratq); the same 16 MiB result
     written into a job's hash, as a worker leaves it; one GET
     /v1/jobs/<id>/result: its time, and how far the API's peak RSS (VmHWM,
     reset with clear_refs first) rose above its RSS before. With
     --baseline-bin (an older build, such as main's before this change),
     the same for that binary, on the same Redis.

Prints a table; never fails on the figures, only when something does not
run (exit 1). Stops what it started, by pid, and ends within
BENCH_DEADLINE_S (default 120 s).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from exec import (  # noqa: E402  (bench/exec.py: processes and deadlines)
    STARTED, BenchError, arm_deadline, free_port, log_failure, start, start_redis, stop, wait_for)

import redis  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "stratq:{python_execution_queue}"
MIB = 16
DEADLINE_S = int(os.environ.get("BENCH_DEADLINE_S", "120"))


def log(msg):
    print(f"bench-json: {msg}", file=sys.stderr, flush=True)


def vm_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def get(url):
    with urllib.request.urlopen(url, timeout=60) as resp:
        return resp.status, resp.read()


def api_get_cost(binary, redis_port, job_id, expected_len, tmp, label):
    """One GET of the job's result from a fresh `binary api`: (ms, MB the
    peak RSS rose, status)."""
    port = free_port()
    api = start([binary, "api", "--port", str(port), "--redis-url", f"redis://127.0.0.1:{redis_port}"],
                log_path=os.path.join(tmp, f"api-{label}.log"))
    try:
        def healthy():
            if api.poll() is not None:
                raise BenchError(f"{binary} api exited with {api.returncode}")
            try:
                return get(f"http://127.0.0.1:{port}/healthz")[0] == 200
            except OSError:
                return False

        wait_for(healthy, 30, f"{binary} api to answer", interval=0.05)
        try:
            with open(f"/proc/{api.pid}/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass
        before = vm_kb(api.pid, "VmRSS")
        t0 = time.monotonic()
        try:
            status, body = get(f"http://127.0.0.1:{port}/v1/jobs/{job_id}/result")
        except urllib.error.HTTPError as e:
            status, body = e.code, e.read()
        ms = (time.monotonic() - t0) * 1000
        grew = (vm_kb(api.pid, "VmHWM") - before) / 1024
        if status == 200 and len(body) < expected_len:
            raise BenchError(f"{label}: the result came back short ({len(body)} bytes)")
        return ms, grew, status
    finally:
        stop([api])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=str(ROOT / "build" / "stratq"))
    ap.add_argument("--cost", default=str(ROOT / "build" / "bench" / "json_cost"))
    ap.add_argument("--baseline-bin", help="an older stratq build to measure the same way")
    args = ap.parse_args()
    arm_deadline(DEADLINE_S)
    tmp = tempfile.mkdtemp(prefix="stratq-bench-json-")
    rows = []
    try:
        out = subprocess.run([args.cost, str(MIB)], capture_output=True, text=True, timeout=DEADLINE_S,
                             check=True).stdout
        lines = [json.loads(line) for line in out.splitlines()]
        size = lines[0]
        for m in lines[1:]:
            verdict = "valid" if m["passed"] else "over the caps"
            rows.append((f"{m['method']} ({verdict})", m["ms"], m["peak_rss_growth_mb"]))

        port = free_port()
        server = start_redis(port, tmp)
        r = redis.Redis(host="127.0.0.1", port=port, socket_timeout=60)
        wait_for(lambda: _ping(r, server), 15, "redis-server", interval=0.05)
        n = size["values"] - 1
        result = b"[" + b",".join([b"{}"] * n) + b"]"
        r.hset(f"{PREFIX}:job:bench-json", mapping={
            "spec": '{"code":"def run(ctx):\\n    pass\\n"}', "status": "succeeded",
            "created_ms": "1", "result": result})
        for label, binary in (("this build", args.bin), ("baseline", args.baseline_bin)):
            if not binary:
                continue
            ms, grew, status = api_get_cost(binary, port, "bench-json", len(result), tmp, label)
            rows.append((f"API GET /result, {label} ({binary}): HTTP {status}", ms, grew))
    except (BenchError, subprocess.SubprocessError, OSError) as e:
        log_failure(e, tmp, log)
        return 1
    finally:
        stop(list(STARTED))

    print(f"\nA result of {size['bytes']:,} bytes, {size['values']:,} values ([{{}},{{}},...]):\n")
    width = max(len(row[0]) for row in rows)
    print(f"{'':{width}}  {'time ms':>9}  {'peak RSS +MB':>12}")
    for what, ms, grew in rows:
        print(f"{what:{width}}  {ms:9.1f}  {grew:12.1f}")
    return 0


def _ping(r, server):
    if server.poll() is not None:
        raise BenchError(f"redis-server exited with {server.returncode}")
    try:
        return r.ping()
    except redis.ConnectionError:
        return False


if __name__ == "__main__":
    sys.exit(main())
