"""`make bench-datasets`: what GET /v1/datasets costs with a data directory
of 10,000 files, and what it costs the other requests of the API's one
event loop (issue 19, item 1).

For each build (--bin, default build/stratq; --baseline-bin, an older build
such as main's before the listing left the event loop) and each of two
directories of 10,000 files:

  csv   10,000 CSV files (the listing holds the first 1,000 it finds);
  mixed 9,990 other files and 10 CSV files (every name read, 10 listed);

a redis-server (loopback, free port, no persistence) and `stratq api` with
STRATQ_DATA_DIR on it, then:

  1. fresh: GET /v1/datasets after the directory changed (a file touched)
     and any cached listing has expired (--max-age-s apart), so that the
     request waits for a scan: median and worst of --fresh requests;
  2. repeat: --repeat GETs back to back: median and p99;
  3. stall: for --stall-s seconds two threads GET /v1/datasets without
     pause while the main thread GETs /healthz: the
     median, p99 and worst time of a /healthz, which waits whenever the
     loop is busy scanning ("idle hz": a /healthz with nothing else going
     on, for comparison).

Prints a table (ms); never fails on the figures, only when something does
not run (exit 1). Stops what it started, by pid, and ends within
BENCH_DEADLINE_S (default 240 s).
"""

import argparse
import http.client
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from exec import (  # noqa: E402  (bench/exec.py: processes and deadlines)
    STARTED, BenchError, arm_deadline, free_port, log_failure, pct, start, start_redis, stop,
    wait_for)

ROOT = Path(__file__).resolve().parents[1]
DEADLINE_S = int(os.environ.get("BENCH_DEADLINE_S", "240"))
FILES = 10_000
ROW = "date,close\n2024-01-02,100.5\n"


def log(msg):
    print(f"bench-datasets: {msg}", file=sys.stderr, flush=True)


def make_dir(tmp, kind):
    d = os.path.join(tmp, f"data-{kind}")
    os.mkdir(d)
    for i in range(FILES):
        csv = kind == "csv" or i % 1000 == 0
        with open(os.path.join(d, f"set{i:05d}.{'csv' if csv else 'txt'}"), "w") as f:
            f.write(ROW)
    return d


class Client:
    """get() returns (status, ms, body). A connection per request: on one
    kept alive, a response of 100 kB sent back to back after another waits
    about 40 ms for the client's delayed ACK (Nagle on the server's second
    write), which would hide the server's own time; the connect is in the
    figure (about 0.1 ms on loopback)."""

    def __init__(self, port):
        self.port = port

    def get(self, path):
        t0 = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read()
        finally:
            conn.close()
        return resp.status, (time.monotonic() - t0) * 1000, body


def checked(client, path):
    status, ms, body = client.get(path)
    if status != 200:
        raise BenchError(f"GET {path}: HTTP {status} {body[:200]!r}")
    return ms, body


def fresh(port, data, n, max_age_s):
    """n requests that each follow a change and the end of any cached listing."""
    c = Client(port)
    name = json.loads(checked(c, "/v1/datasets")[1])["datasets"][0]["file"]
    times = []
    for i in range(n):
        os.utime(os.path.join(data, name), (i, i))
        time.sleep(max_age_s)
        ms, body = checked(c, "/v1/datasets")
        entry = next(d for d in json.loads(body)["datasets"] if d["file"] == name)
        if entry["modified_ms"] != i * 1000:
            raise BenchError(f"a listing older than the change: {entry}")
        times.append(ms)
    return times


def _hammer(port, seconds, failures):
    c = Client(port)
    stop_at = time.monotonic() + seconds
    try:
        while time.monotonic() < stop_at:
            checked(c, "/v1/datasets")
    except Exception as e:  # noqa: BLE001  (reported by stall)
        failures.put(str(e))


def stall(port, seconds):
    """/healthz times while two other processes (not threads: the GIL would
    slow the measuring one) GET /v1/datasets without pause."""
    failures = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=_hammer, args=(port, seconds, failures))
             for _ in range(2)]
    for p in procs:
        p.start()
    c = Client(port)
    times = []
    stop_at = time.monotonic() + seconds
    while time.monotonic() < stop_at:
        times.append(checked(c, "/healthz")[0])
        time.sleep(0.002)
    for p in procs:
        p.join()
    if not failures.empty():
        raise BenchError(f"GET /v1/datasets failed under load: {failures.get()}")
    return times


def measure(binary, redis_port, data, args, tmp, label):
    port = free_port()
    env = dict(os.environ, STRATQ_DATA_DIR=data)
    api = start([binary, "api", "--port", str(port), "--redis-url", f"redis://127.0.0.1:{redis_port}",
                 "--log-level", "warn"], env=env, log_path=os.path.join(tmp, f"api-{label}.log"))
    try:
        def healthy():
            if api.poll() is not None:
                raise BenchError(f"{binary} api exited with {api.returncode}")
            try:
                return Client(port).get("/healthz")[0] == 200
            except OSError:
                return False

        wait_for(healthy, 30, f"{binary} api to answer", interval=0.05)
        f = fresh(port, data, args.fresh, args.max_age_s)
        c = Client(port)
        r = [checked(c, "/v1/datasets")[0] for _ in range(args.repeat)]
        idle = [checked(c, "/healthz")[0] for _ in range(args.repeat)]
        s = stall(port, args.stall_s)
        return {"fresh": f, "repeat": r, "idle": idle, "stall": s}
    finally:
        stop([api])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=str(ROOT / "build" / "stratq"))
    ap.add_argument("--baseline-bin", help="an older stratq build to measure the same way")
    ap.add_argument("--fresh", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=300)
    ap.add_argument("--stall-s", type=float, default=3.0)
    ap.add_argument("--max-age-s", type=float, default=1.1,
                    help="the wait before a fresh request: past the API's cache age")
    args = ap.parse_args()
    arm_deadline(DEADLINE_S)
    tmp = tempfile.mkdtemp(prefix="stratq-bench-datasets-")
    rows = []
    try:
        port = free_port()
        start_redis(port, tmp)
        dirs = {kind: make_dir(tmp, kind) for kind in ("csv", "mixed")}
        for label, binary in (("this build", args.bin), ("baseline", args.baseline_bin)):
            if not binary:
                continue
            for kind, data in dirs.items():
                log(f"{label}, {kind}")
                m = measure(binary, port, data, args, tmp, f"{label.replace(' ', '-')}-{kind}")
                rows.append((f"{label}, {kind}", m))
    except (BenchError, OSError) as e:
        log_failure(e, tmp, log)
        return 1
    finally:
        stop(list(STARTED))
    shutil.rmtree(tmp, ignore_errors=True)

    print(f"\nGET /v1/datasets, {FILES:,} files in STRATQ_DATA_DIR (ms):\n")
    head = ("", "fresh p50", "fresh max", "repeat p50", "repeat p99", "idle hz p50",
            "healthz p50", "healthz p99", "healthz max")
    width = max(len(r[0]) for r in rows)
    print(f"{head[0]:{width}}" + "".join(f"  {h:>11}" for h in head[1:]))
    for what, m in rows:
        cells = (pct(m["fresh"], 50), max(m["fresh"]), pct(m["repeat"], 50), pct(m["repeat"], 99),
                 pct(m["idle"], 50), pct(m["stall"], 50), pct(m["stall"], 99), max(m["stall"]))
        print(f"{what:{width}}" + "".join(f"  {v:11.2f}" for v in cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
