#!/usr/bin/env python3
"""Soak: a steady mix of jobs for a long time, with occasional kills; the
API's and each worker's memory and open fds must stay flat.

Starts its own redis-server (AOF on), the stratq API and 3 workers (release
build by default). For --minutes it submits about --rate jobs a second
through POST /v1/jobs/batch (short ones, and every --long-every seconds one
that sleeps 2-4 s), reads jobs and the queue back over HTTP and keeps one
long-poll waiter going; about every --kill-every seconds it SIGKILLs a
random worker's executor or a random worker (and starts a replacement).

Every --sample-every seconds (with client traffic paused, so that in-flight
requests do not count) it reads VmRSS from /proc/<pid>/status and the number
of entries of /proc/<pid>/fd for the API and each worker supervisor. After
the warm-up (the first --warmup fraction of the run) it compares, for each
process alive from the end of the warm-up to the end: RSS growth must stay
under --rss-limit percent and the fd count must not grow. Workers killed or
started after the warm-up are reported separately, not judged. At the end
every submitted job must have succeeded with the right result.

Exits 1 if a limit is broken. All processes are started and stopped by pid.
"""

import argparse
import json
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stack import PREFIX, QUEUE, REPO_ROOT, TERMINAL, Stack, StackError, fd_count, rss_kb  # noqa: E402

SHORT_CODE = "def run(ctx):\n    return {'i': ctx.params['i'], 'sq': ctx.params['i'] ** 2}\n"
LONG_CODE = "import time\n\ndef run(ctx):\n    time.sleep(ctx.params['sleep'])\n    return ctx.params['i']\n"


class Traffic:
    """Lets the sampler pause client requests: a request starts only when
    no pause is on, and a pause waits for the requests in flight."""

    def __init__(self):
        self.cond = threading.Condition()
        self.inflight = 0
        self.paused = False
        self.stopping = threading.Event()

    def enter(self):
        with self.cond:
            while self.paused and not self.stopping.is_set():
                self.cond.wait(0.5)
            self.inflight += 1

    def leave(self):
        with self.cond:
            self.inflight -= 1
            self.cond.notify_all()

    def pause(self, timeout=20):
        with self.cond:
            self.paused = True
            deadline = time.monotonic() + timeout
            while self.inflight and time.monotonic() < deadline:
                self.cond.wait(0.1)
            return self.inflight == 0

    def resume(self):
        with self.cond:
            self.paused = False
            self.cond.notify_all()


class Soak:
    def __init__(self, args):
        self.a = args
        self.rng = random.Random(args.seed)
        self.expected = {}  # id -> expected result
        self.lock = threading.Lock()
        self.traffic = Traffic()
        self.errors = []  # client-side errors (counted, not fatal unless persistent)
        self.counts = dict(submitted=0, long=0, reads=0, waits=0, kills_worker=0, kills_executor=0)
        self.samples = {}  # pid -> {"kind", "started", "ended", "points": [(t, rss, fds)]}
        self.violations = []

    # -- client traffic ----------------------------------------------------

    def submitter(self, stack, t_end):
        tick = 0.5
        per_tick = self.a.rate * tick
        carry, i, next_long = 0.0, 0, time.monotonic() + self.a.long_every
        next_tick = time.monotonic()
        while not self.traffic.stopping.is_set() and time.monotonic() < t_end:
            carry += per_tick
            n, carry = int(carry), carry - int(carry)
            specs, exp = [], []
            now = time.monotonic()
            for _ in range(n):
                if now >= next_long:
                    next_long = now + self.a.long_every
                    sleep = round(self.rng.uniform(2.0, 4.0), 2)
                    specs.append({"code": LONG_CODE, "params": {"i": i, "sleep": sleep}, "timeout_s": 60})
                    exp.append(i)
                    self.counts["long"] += 1
                else:
                    specs.append({"code": SHORT_CODE, "params": {"i": i}, "timeout_s": 60})
                    exp.append({"i": i, "sq": i * i})
                i += 1
            if specs:
                self.traffic.enter()
                try:
                    ids = stack.client.submit_batch(specs, timeout=30)
                except (StackError, OSError) as e:
                    self.errors.append(f"submit: {e}")
                    ids = []
                finally:
                    self.traffic.leave()
                with self.lock:
                    for jid, e in zip(ids, exp):
                        self.expected[jid] = e
                    self.counts["submitted"] += len(ids)
            next_tick += tick
            time.sleep(max(0.0, next_tick - time.monotonic()))

    def reader(self, stack, t_end):
        """GETs of jobs and of the queue, a few a second."""
        while not self.traffic.stopping.is_set() and time.monotonic() < t_end:
            with self.lock:
                jid = next(reversed(self.expected), None) if self.expected else None
            self.traffic.enter()
            try:
                paths = ([f"/v1/jobs/{jid}"] if jid else []) + ["/v1/queue", "/v1/workers"]
                for path in paths:
                    status, body = stack.client.request("GET", path, timeout=10)
                    if status != 200:
                        self.errors.append(f"read: GET {path} -> {status} {body!r}")
                self.counts["reads"] += 1
            except OSError as e:
                self.errors.append(f"read: {e!r}")
            finally:
                self.traffic.leave()
            time.sleep(0.2)

    def waiter(self, stack, t_end):
        """One long-poll at a time on the newest job (GET ?wait=5), each job
        waited for once."""
        last = None
        while not self.traffic.stopping.is_set() and time.monotonic() < t_end:
            with self.lock:
                jid = next(reversed(self.expected), None) if self.expected else None
            if not jid or jid == last:
                time.sleep(0.1)
                continue
            last = jid
            self.traffic.enter()
            try:
                status, body = stack.client.request("GET", f"/v1/jobs/{jid}?wait=5", timeout=15)
                if status != 200:
                    self.errors.append(f"wait: GET /v1/jobs/{jid}?wait=5 -> {status} {body!r}")
                self.counts["waits"] += 1
            except OSError as e:
                self.errors.append(f"wait: {e!r}")
            finally:
                self.traffic.leave()

    # -- sampling ------------------------------------------------------------

    def tracked(self, stack):
        procs = [stack.api] + list(stack.workers)
        return [(p.pid, p.kind) for p in procs if p.alive()]

    def sample(self, stack, t):
        """One sample of every live API/worker process, with traffic paused.
        fds are the minimum of three reads 50 ms apart (a worker restarting
        its executor holds an extra socket for a moment)."""
        quiet = self.traffic.pause()
        try:
            if not quiet:
                self.errors.append("sample taken with requests still in flight")
            for pid, kind in self.tracked(stack):
                fds = []
                for k in range(3):
                    fds.append(fd_count(pid))
                    if k < 2:
                        time.sleep(0.05)
                rss = rss_kb(pid)
                if rss is None or None in fds:
                    continue
                s = self.samples.setdefault(pid, {"kind": kind, "started": t, "ended": None, "points": []})
                s["points"].append((t, rss, min(fds)))
        finally:
            self.traffic.resume()

    def kill(self, stack, t):
        worker = self.rng.choice(stack.workers)
        if self.rng.random() < 0.5:
            stack.kill_worker(worker)
            if worker.pid in self.samples:
                self.samples[worker.pid]["ended"] = t
            stack.start_worker()
            self.counts["kills_worker"] += 1
            print(f"  {t:6.0f}s: killed worker pid {worker.pid}; replacement pid {stack.workers[-1].pid}")
        else:
            pid = stack.kill_executor(worker)
            if pid is not None:
                self.counts["kills_executor"] += 1
                print(f"  {t:6.0f}s: killed executor pid {pid} of worker pid {worker.pid}")

    # -- the run -------------------------------------------------------------

    def run(self, stack):
        a = self.a
        duration = a.minutes * 60.0
        warm_t = duration * a.warmup
        t0 = time.monotonic()
        t_end = t0 + duration
        threads = [
            threading.Thread(target=f, args=(stack, t_end), daemon=True)
            for f in (self.submitter, self.reader, self.waiter)
        ]
        for th in threads:
            th.start()
        sample_times = sorted({round(k * a.sample_every, 3) for k in range(int(duration // a.sample_every) + 1)} | {warm_t})
        sample_times = [t for t in sample_times if t < duration] + [duration]
        next_kill = self.rng.uniform(0.75, 1.25) * a.kill_every
        r = stack.redis(socket_timeout=5)
        try:
            for st in sample_times:
                while True:
                    now = time.monotonic() - t0
                    if now >= st:
                        break
                    if now >= next_kill:
                        self.kill(stack, now)
                        next_kill = now + self.rng.uniform(0.75, 1.25) * a.kill_every
                        continue
                    time.sleep(min(0.2, st - now, max(0.0, next_kill - now)))
                self.check_daemons(stack)
                self.sample(stack, st)
                try:
                    backlog = r.llen(QUEUE)
                except redis.exceptions.RedisError:
                    backlog = "?"
                line = ", ".join(
                    f"{kind}[{pid}] {pts['points'][-1][1] / 1024:.1f}MiB/{pts['points'][-1][2]}fd"
                    for pid, kind in self.tracked(stack)
                    for pts in [self.samples.get(pid)]
                    if pts and pts["points"] and pts["points"][-1][0] == st
                )
                mark = " (end of warm-up)" if st == warm_t else ""
                print(f"  {st:6.0f}s{mark}: {self.counts['submitted']} submitted, backlog {backlog}; {line}")
        finally:
            r.close()
            self.traffic.stopping.set()
            self.traffic.resume()
            for th in threads:
                th.join(timeout=30)
        self.warm_t, self.end_t = warm_t, duration

    def check_daemons(self, stack):
        for proc in stack.procs:
            if not proc.killed and not proc.alive() and not getattr(proc, "reported", False):
                proc.reported = True
                self.violations.append(
                    f"{proc.kind} pid {proc.pid} exited by itself with {proc.popen.returncode}:\n{proc.tail(15)}"
                )
                if proc in stack.workers:
                    stack.workers.remove(proc)
                    stack.start_worker()

    def drain_and_verify(self, stack, timeout=180):
        """Wait for every submitted job to finish, then check the results."""
        r = stack.redis(socket_timeout=10)
        ids = list(self.expected)
        pending = set(ids)
        deadline = time.monotonic() + timeout
        try:
            while pending and time.monotonic() < deadline:
                chunk = list(pending)
                pipe = r.pipeline(transaction=False)
                for jid in chunk:
                    pipe.hget(f"{PREFIX}:job:{jid}", "status")
                for jid, st in zip(chunk, pipe.execute()):
                    if st in TERMINAL:
                        pending.discard(jid)
                if pending:
                    time.sleep(0.5)
            if pending:
                self.violations.append(f"{len(pending)} jobs not terminal {timeout}s after the soak, e.g. {sorted(pending)[:5]}")
            bad, extra = [], 0
            for k in range(0, len(ids), 2000):
                chunk = ids[k : k + 2000]
                pipe = r.pipeline(transaction=False)
                for jid in chunk:
                    pipe.hmget(f"{PREFIX}:job:{jid}", "status", "result", "attempts")
                for jid, (st, res, att) in zip(chunk, pipe.execute()):
                    extra += max(0, int(att or 0) - 1)
                    if st != "succeeded":
                        bad.append(f"{jid}: status {st}")
                    elif json.loads(res) != self.expected[jid]:
                        bad.append(f"{jid}: result {res}, expected {self.expected[jid]}")
            self.counts["extra_runs"] = extra
            kills = self.counts["kills_worker"] + self.counts["kills_executor"]
            if extra > kills:
                self.violations.append(f"{extra} extra runs for {kills} kills")
            self.counts["bad_jobs"] = len(bad)
            if bad:
                self.violations.append(f"{len(bad)} jobs did not succeed correctly: {bad[:5]}")
        finally:
            r.close()

    # -- report --------------------------------------------------------------

    def report(self):
        a = self.a
        warm_t, end_t = self.warm_t, self.end_t
        print()
        print(
            f"soak results: {a.minutes:g} min, warm-up {warm_t:.0f}s, {self.counts['submitted']} jobs "
            f"({self.counts['long']} long), {self.counts['reads']} read rounds, {self.counts['waits']} long-polls, "
            f"kills: {self.counts['kills_worker']} worker / {self.counts['kills_executor']} executor, "
            f"extra runs {self.counts.get('extra_runs', '?')}"
        )
        hdr = f"  {'process':<18} {'RSS warm-up':>12} {'RSS end':>10} {'growth':>8} {'fd warm-up':>11} {'fd end':>7}  verdict"
        print(hdr)
        other = []
        for pid, s in sorted(self.samples.items(), key=lambda kv: (kv[1]["kind"] != "api", kv[0])):
            pts = s["points"]
            at_warm = [p for p in pts if p[0] == warm_t]
            at_end = [p for p in pts if p[0] == end_t]
            name = f"{s['kind']} {pid}"
            if not at_warm or not at_end:
                other.append((name, s))
                continue
            _, rss_w, fd_w = at_warm[0]
            _, rss_e, fd_e = at_end[0]
            growth = (rss_e - rss_w) * 100.0 / rss_w
            problems = []
            if growth >= a.rss_limit:
                problems.append(f"RSS +{growth:.1f}% >= {a.rss_limit:g}%")
            if fd_e > fd_w:
                problems.append(f"fds {fd_w} -> {fd_e}")
            verdict = "; ".join(problems) or "ok"
            if problems:
                self.violations.append(f"{name}: {verdict}")
            print(
                f"  {name:<18} {rss_w:>9} KiB {rss_e:>6} KiB {growth:>+7.1f}% {fd_w:>11} {fd_e:>7}  {verdict}"
            )
        if other:
            print("  replaced workers (killed, or started after the warm-up; not judged):")
            for name, s in other:
                pts = s["points"]
                first, last = pts[0], pts[-1]
                how = f"killed at {s['ended']:.0f}s" if s["ended"] is not None else "alive at the end"
                print(
                    f"  {name:<18} first {first[1]} KiB/{first[2]} fd at {first[0]:.0f}s, "
                    f"last {last[1]} KiB/{last[2]} fd at {last[0]:.0f}s ({how})"
                )
        if self.errors:
            print(f"  client errors: {len(self.errors)} (first: {self.errors[0]})")
            if len(self.errors) > max(5, self.counts["submitted"] // 1000):
                self.violations.append(f"{len(self.errors)} client errors, first: {self.errors[0]}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", dest="binary", default=str(REPO_ROOT / "build" / "stratq"), help="stratq binary (default build/stratq)")
    ap.add_argument("--minutes", type=float, default=30.0, help="duration (default 30)")
    ap.add_argument("--rate", type=float, default=20.0, help="jobs submitted per second (default 20)")
    ap.add_argument("--long-every", type=float, default=4.0, help="seconds between 2-4 s jobs (default 4)")
    ap.add_argument("--kill-every", type=float, default=60.0, help="seconds between kills, about (default 60)")
    ap.add_argument("--sample-every", type=float, default=10.0, help="seconds between samples (default 10)")
    ap.add_argument("--warmup", type=float, default=0.2, help="warm-up fraction of the run (default 0.2)")
    ap.add_argument("--rss-limit", type=float, default=5.0, help="RSS growth limit after warm-up, percent (default 5)")
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--keep", action="store_true", help="keep logs and Redis data even on success")
    a = ap.parse_args(argv)
    if a.seed is None:
        a.seed = int(time.time())
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    workdir = Path(tempfile.mkdtemp(prefix="stratq-soak-"))
    stack = Stack(
        a.binary,
        workdir,
        # Heartbeat 1 s so that a killed worker's job is reaped within 3 s.
        worker_env={"STRATQ_HEARTBEAT_S": "1", "STRATQ_LOG_LEVEL": "warn"},
        api_env={"STRATQ_LOG_LEVEL": "warn"},
    )
    soak = Soak(a)
    print(
        f"soak: {a.minutes:g} min, ~{a.rate:g} jobs/s (one of 2-4 s every {a.long_every:g}s), a kill every "
        f"~{a.kill_every:g}s, samples every {a.sample_every:g}s, seed {a.seed}, binary {a.binary}, logs in {workdir / 'logs'}"
    )
    completed = False
    try:
        stack.start_redis()
        stack.start_api()
        for _ in range(a.workers):
            stack.start_worker()
        soak.run(stack)
        soak.drain_and_verify(stack)
        completed = True
    except StackError as e:
        soak.violations.append(f"harness: {e}")
    except (OSError, redis.exceptions.RedisError) as e:
        soak.violations.append(f"harness: {e!r}")
    finally:
        for problem in stack.close():
            soak.violations.append(problem)
        for rep in stack.sanitizer_reports():
            soak.violations.append(f"sanitizer: {rep}")
    if completed:
        soak.report()
    if soak.violations:
        print(f"\nFAILED: {len(soak.violations)} limit(s) broken; logs kept in {workdir}")
        for v in soak.violations:
            print(f"  - {v}")
        return 1
    print(f"\nOK: RSS growth < {a.rss_limit:g}% and no fd growth after warm-up; every job succeeded")
    if not a.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
