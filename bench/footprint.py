"""What each stratq process maps and costs (issue 19, item 7).

Usage: /usr/bin/python3 bench/footprint.py [--bin build/stratq] [--runs 10]

Starts a redis-server of its own (loopback, free port, no persistence), an
idle `stratq api` and an idle warm `stratq worker` (STRATQ_PRELOAD=numpy,pandas)
and prints, for the API, the worker's supervisor, its executor and the
executor's spare job child (a fork of it, waiting for a job):
RSS and PSS (/proc/PID/smaps_rollup), how many shared objects the process
maps, and whether libpython is one of them (/proc/PID/maps). Then it times
`stratq --version` and the executor's --version (exec to exit: loading the
program and its libraries), and starts the executor on its own RUNS times
per mode, as the supervisor does (a socket on fd 3, a clean environment):
exec to its "ready" frame. Times are the minimum and the median.

The executor is build/stratq-executor beside the binary when there is one,
`stratq executor` otherwise (the layout before issue 19), so that one
script measures both. Stops only what it started, by pid.
"""

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "chaos"))
from stack import Stack, children, wait_for  # noqa: E402  (the chaos suite's redis-server, API and workers)


def memory(pid):
    """(RSS kB, PSS kB) of pid."""
    out = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("Rss", "Pss"):
            out[k] = int(v.split()[0])
    return out["Rss"], out["Pss"]


def shared_objects(pid):
    """The paths of the shared objects pid maps."""
    objs = set()
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        parts = line.split(None, 5)
        if len(parts) == 6 and ".so" in parts[5]:
            objs.add(parts[5])
    return objs


def executor_cmd(binary):
    sep = binary.parent / "stratq-executor"
    return [str(sep)] if sep.exists() else [str(binary), "executor"]


def version_time(argv, runs):
    """(min, median) ms from exec to exit of ARGV --version: what loading
    the program and its libraries costs."""
    times = []
    for _ in range(runs):
        t0 = time.monotonic()
        subprocess.run([*argv, "--version"], stdout=subprocess.DEVNULL, check=True)
        times.append((time.monotonic() - t0) * 1000)
    return min(times), statistics.median(times)


def start_time(binary, mode, preload, runs):
    """(min, median) ms from exec to the executor's ready frame."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
    args = executor_cmd(binary) + ["--mode", mode, "--preload", preload,
                                   "--harness-dir", str(ROOT / "python"), "--log-level", "error"]
    times = []
    for _ in range(runs):
        a, b = socket.socketpair()
        t0 = time.monotonic()
        # dup2 leaves fd 3 inheritable; Python's own fds are close-on-exec.
        p = subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, close_fds=False,
                             preexec_fn=lambda fd=b.fileno(): os.dup2(fd, 3))
        b.close()
        a.settimeout(30)
        head = a.recv(4)
        times.append((time.monotonic() - t0) * 1000)
        # The executor leaves at the end of its input; read out the rest of
        # the frame first so that the close resets nothing.
        a.shutdown(socket.SHUT_WR)
        while a.recv(65536):
            pass
        a.close()
        p.wait(timeout=10)
        if not head:
            raise SystemExit(f"footprint: the executor ({' '.join(args)}) did not start")
    return min(times), statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default=str(ROOT / "build" / "stratq"))
    ap.add_argument("--runs", type=int, default=10)
    opt = ap.parse_args()
    binary = Path(opt.bin).resolve()
    env = {"STRATQ_MODE": "warm", "STRATQ_PRELOAD": "numpy,pandas",
           "STRATQ_HARNESS_DIR": str(ROOT / "python")}
    with tempfile.TemporaryDirectory(prefix="stratq-footprint-") as tmp:
        stack = Stack(binary, tmp, worker_env=env)
        try:
            stack.start_redis()
            api = stack.start_api()
            worker = stack.start_worker()
            # Ready: the executor runs and has forked its spare job child.
            executor = wait_for(lambda: stack.executor_of(worker), 60, "the worker's executor")
            spare = wait_for(lambda: children(executor), 60, "the spare job child")[0]
            time.sleep(1)
            rows = [("stratq api", api.pid), ("worker supervisor", worker.pid),
                    ("executor (warm)", executor), ("spare job child", spare)]
            print(f"binary: {binary}")
            print(f"{'process':<20} {'RSS kB':>8} {'PSS kB':>8} {'.so':>4}  libpython")
            for name, pid in rows:
                rss, pss = memory(pid)
                objs = shared_objects(pid)
                py = any("libpython" in o for o in objs)
                print(f"{name:<20} {rss:>8} {pss:>8} {len(objs):>4}  {'yes' if py else 'no'}")
            print(f"ms, min and median of {opt.runs}:")
            for name, argv in (("stratq --version", [str(binary)]),
                               ("executor --version", executor_cmd(binary)[:1])):
                lo, mid = version_time(argv, opt.runs * 5)
                print(f"  {name:<28} {lo:8.1f} {mid:8.1f}   (exec to exit, x5 runs)")
            for mode, preload in (("cold", ""), ("warm", ""), ("warm", "numpy,pandas")):
                lo, mid = start_time(binary, mode, preload, opt.runs)
                print(f"  executor {mode:<5} {preload or '-':<13}  {lo:8.1f} {mid:8.1f}   (exec to ready)")
        finally:
            problems = stack.close()
    for p in problems:
        print(f"footprint: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
