"""Throughput and latency of stratq on this machine, through the real stack.

Starts `stratq up` (its own redis-server) with 1 and then 2 workers, submits
a batch of no-op jobs and a batch of small pandas jobs over HTTP, and reports
jobs per second and submit-to-result latency. The baseline in the same run
is the cost of the same work done without stratq: a cold `python3` start
per job (what each cold-mode job pays), measured here directly.

Stops by itself: every wait has a deadline. Later issues add the warm
executor and the peers (RQ, Celery) to this table.
"""

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / "build" / "stratq"
PYTHON = "/usr/bin/python3"
NOOP = "def run(ctx):\n    return ctx.params['i']\n"
PANDAS = ("import pandas as pd\n\ndef run(ctx):\n"
          "    s = pd.Series(range(1000), dtype='float64')\n"
          "    return float(s.rolling(20).mean().iloc[-1])\n")
JOBS = int(os.environ.get("BENCH_JOBS", "60"))
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with OPENER.open(req, timeout=30) as resp:
        return json.loads(resp.read())


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.01)
    raise SystemExit(f"bench: timed out waiting for {what}")


def run_batch(api, code, n):
    """Submits n jobs at once; returns (jobs/s, latencies in ms)."""
    t0 = time.monotonic()
    ids = [http("POST", f"{api}/v1/jobs", {"code": code, "params": {"i": i}})["id"]
           for i in range(n)]
    done = {}

    def all_done():
        for job_id in ids:
            if job_id in done:
                continue
            job = http("GET", f"{api}/v1/jobs/{job_id}")
            if job["status"] not in ("queued", "running"):
                if job["status"] != "succeeded":
                    raise SystemExit(f"bench: job {job_id} ended {job['status']}: {job['error']}")
                done[job_id] = job
        return len(done) == n

    wait_for(all_done, 600, f"{n} jobs")
    elapsed = time.monotonic() - t0
    lat = [j["finished_ms"] - j["created_ms"] for j in done.values()]
    return n / elapsed, lat


def single_latency(api, code, n):
    """Submit one job, wait for it, repeat: latency at light load."""
    lat = []
    for i in range(n):
        t0 = time.monotonic()
        job_id = http("POST", f"{api}/v1/jobs", {"code": code, "params": {"i": i}})["id"]
        wait_for(lambda: http("GET", f"{api}/v1/jobs/{job_id}")["status"] == "succeeded", 60,
                 "a job")
        lat.append((time.monotonic() - t0) * 1000)
    return lat


def cold_python_ms(code_import, n=10):
    times = []
    for _ in range(n):
        t0 = time.monotonic()
        subprocess.run([PYTHON, "-I", "-c", code_import], check=True)
        times.append((time.monotonic() - t0) * 1000)
    return statistics.median(times)


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def with_stack(workers, fn):
    port = free_port()
    state = tempfile.mkdtemp(prefix="stratq-bench-")
    proc = subprocess.Popen([BIN, "up", "--workers", str(workers), "--port", str(port),
                             "--state-dir", state], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    api = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: http("GET", f"{api}/v1/queue")["workers"] == workers
                 if _alive(proc, api) else None, 60, "the stack")
        return fn(api)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def _alive(proc, api):
    if proc.poll() is not None:
        raise SystemExit(f"bench: stratq up exited: {proc.stdout.read()}")
    try:
        http("GET", f"{api}/healthz")
        return True
    except OSError:
        return False


def main():
    if not BIN.exists():
        raise SystemExit("bench: build/stratq is missing; run make first")
    print(f"stratq cold mode on {os.cpu_count()} cores, {JOBS} jobs per batch\n")
    base_noop = cold_python_ms("pass")
    base_pandas = cold_python_ms("import pandas")
    print(f"{'figure':44} {'stratq':>10} {'baseline':>10} {'ratio':>7}")
    for workers in (1, 2):
        for name, code, base in (("no-op", NOOP, base_noop), ("pandas", PANDAS, base_pandas)):
            rate, _ = with_stack(workers, lambda api: run_batch(api, code, JOBS))
            # Baseline: the rate of back-to-back cold interpreter starts,
            # one per worker, with nothing else around them.
            base_rate = workers * 1000 / base
            print(f"{f'{name} jobs/s, {workers} worker(s)':44} {rate:10.1f} {base_rate:10.1f} "
                  f"{rate / base_rate:7.2f}")
    lat = with_stack(1, lambda api: single_latency(api, NOOP, 20))
    print(f"{'no-op submit->result p50 ms (1 worker)':44} {pct(lat, 50):10.1f} {base_noop:10.1f} "
          f"{pct(lat, 50) / base_noop:7.2f}")
    print(f"{'no-op submit->result p99 ms (1 worker)':44} {pct(lat, 99):10.1f} {base_noop:10.1f} "
          f"{pct(lat, 99) / base_noop:7.2f}")
    print("\nbaseline: a bare cold `python3 -I` start per job (no-op: -c pass; "
          "pandas: -c 'import pandas'), measured in this run")


if __name__ == "__main__":
    sys.exit(main())
