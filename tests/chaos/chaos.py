#!/usr/bin/env python3
"""Chaos suite: no job lost while workers, executors and Redis die under load.

Starts its own redis-server (AOF on), the stratq API and 3 workers; submits
N short jobs and L jobs of 1-3 s through POST /v1/jobs/batch; then, every
1-3 s (random, seeded), SIGKILLs either a random worker supervisor (and
starts a replacement) or a random worker's executor (the worker restarts it
itself), and once, about a third of the way in, restarts redis-server
gracefully. When every job is terminal (or the deadline passes) it checks:

- every job exists and is in exactly one terminal state, `succeeded`, with
  the right result;
- none lost: as many job hashes as jobs submitted, the queue, every
  processing list, the scheduled and dead sets empty;
- jobs run more than once and the total of extra runs (sum of attempts - 1)
  are each at most the number of kills;
- the API answers /healthz 200 again within 15 s of each Redis restart;
- no worker or API died by itself, no executor or job outlived its killed
  worker, no sanitizer report in any log.

Workers run with STRATQ_HEARTBEAT_S=1 (a killed worker is reaped after 3 s)
and STRATQ_MAX_DELIVERIES=10: this suite kills far more often than any
deployment would, so a job may lose its worker more than the default 3 times
without being a poison pill.

Usage: chaos.py [--bin build/stratq] [--short 2000] [--long 20] [--seed N]
Importable: ``run(**params)`` returns a dict of counts (``violations`` lists
what failed). All processes are started and stopped by pid.
"""

import argparse
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stack import (  # noqa: E402
    INDEXED_STATUSES,
    PREFIX,
    QUEUE,
    REPO_ROOT,
    TERMINAL,
    Stack,
    StackError,
    pid_alive,
    wait_for,
)

SHORT_CODE = "def run(ctx):\n    return ctx.params['i'] * 2\n"
LONG_CODE = "import time\n\ndef run(ctx):\n    time.sleep(ctx.params['sleep'])\n    return ctx.params['i']\n"

DEFAULTS = dict(
    binary=str(REPO_ROOT / "build" / "stratq"),
    short=2000,
    long=20,
    workers=3,
    kill_min=1.0,
    kill_max=3.0,
    redis_restarts=1,
    deadline=600.0,
    seed=None,
    heartbeat_s=1,
    max_deliveries=10,
    workdir=None,
    keep=False,
    verbose=True,
)


class Chaos:
    def __init__(self, p):
        self.p = p
        self.rng = random.Random(p["seed"])
        self.say = print if p["verbose"] else (lambda *a, **k: None)
        self.expected = {}  # id -> expected result
        self.kinds = {}  # id -> "short" | "long"
        self.pending = set()
        self.c = dict(
            seed=p["seed"],
            jobs=0,
            short_jobs=0,
            long_jobs=0,
            kills=0,
            worker_kills=0,
            executor_kills=0,
            kills_skipped=0,
            redis_restarts=0,
            redis_down_s=0.0,
            elapsed_s=0.0,
            succeeded=0,
            not_succeeded=0,
            wrong_results=0,
            missing=0,
            jobs_run_more_than_once=0,
            extra_runs=0,
            max_attempts=0,
            lost_worker_total=0,
            late_results_discarded=0,
            executor_deaths_requeued=0,
            reaped_requeued=0,
            violations=[],
        )

    def violation(self, msg):
        self.c["violations"].append(msg)
        self.say(f"VIOLATION: {msg}")

    # -- setup -------------------------------------------------------------

    def specs(self):
        out = []
        for i in range(self.p["short"]):
            out.append(("short", {"code": SHORT_CODE, "params": {"i": i}, "timeout_s": 60}, i * 2))
        for i in range(self.p["long"]):
            sleep = round(self.rng.uniform(1.0, 3.0), 2)
            out.append(("long", {"code": LONG_CODE, "params": {"i": i, "sleep": sleep}, "timeout_s": 60}, i))
        # Long jobs spread over the whole run, so that kills find them running.
        self.rng.shuffle(out)
        return out

    def submit(self, stack):
        specs = self.specs()
        for k in range(0, len(specs), 1000):
            chunk = specs[k : k + 1000]
            ids = stack.client.submit_batch([s for _, s, _ in chunk])
            for (kind, _, exp), jid in zip(chunk, ids):
                if jid in self.expected:
                    raise StackError(f"the API gave id {jid} twice")
                self.expected[jid] = exp
                self.kinds[jid] = kind
        self.pending = set(self.expected)
        self.c["jobs"] = len(self.expected)
        self.c["short_jobs"] = self.p["short"]
        self.c["long_jobs"] = self.p["long"]

    # -- during the run ----------------------------------------------------

    def poll_terminal(self, r):
        """Drop finished jobs from self.pending; False if Redis is away."""
        ids = list(self.pending)
        try:
            for k in range(0, len(ids), 1000):
                chunk = ids[k : k + 1000]
                pipe = r.pipeline(transaction=False)
                for jid in chunk:
                    pipe.hget(f"{PREFIX}:job:{jid}", "status")
                for jid, status in zip(chunk, pipe.execute()):
                    if status in TERMINAL:
                        self.pending.discard(jid)
        except redis.exceptions.RedisError:
            return False
        return True

    def kill_one(self, stack):
        worker = self.rng.choice(stack.workers)
        if self.rng.random() < 0.5:
            stack.kill_worker(worker)
            self.c["worker_kills"] += 1
            self.c["kills"] += 1
            stack.start_worker()
            self.say(f"  killed worker pid {worker.pid}; replacement pid {stack.workers[-1].pid}")
        else:
            pid = stack.kill_executor(worker)
            if pid is None:
                # Between executors (the worker is starting a new one).
                self.c["kills_skipped"] += 1
                return
            self.c["executor_kills"] += 1
            self.c["kills"] += 1
            self.say(f"  killed executor pid {pid} of worker pid {worker.pid}")

    def check_api_recovers(self, stack, timeout=15.0):
        """After a Redis restart the API must reconnect by itself: /healthz
        200 again within ``timeout`` (its reconnect backoff is at most 5 s)."""
        try:
            wait_for(stack.client.healthy, timeout, "the API's /healthz")
        except StackError:
            self.violation(
                f"the API still answers /healthz 503 {timeout:g}s after redis-server came back "
                f"(log {stack.api.log_path}):\n{stack.api.tail(6)}"
            )

    def check_daemons(self, stack):
        """A daemon that exited without being killed by us crashed."""
        for proc in stack.procs:
            if not proc.killed and not proc.alive() and not getattr(proc, "reported", False):
                proc.reported = True
                self.violation(
                    f"{proc.kind} pid {proc.pid} exited by itself with {proc.popen.returncode}; "
                    f"log {proc.log_path}:\n{proc.tail(15)}"
                )
                if proc in stack.workers:
                    stack.workers.remove(proc)
                    stack.start_worker()

    def chaos(self, stack):
        r = stack.redis(socket_timeout=5)
        total = len(self.expected)
        t0 = time.monotonic()
        deadline = t0 + self.p["deadline"]
        next_kill = t0 + self.rng.uniform(self.p["kill_min"], self.p["kill_max"])
        restarts_left = self.p["redis_restarts"]
        next_report = t0 + 10
        try:
            while True:
                now = time.monotonic()
                self.poll_terminal(r)
                done = total - len(self.pending)
                if not self.pending:
                    break
                if now >= deadline:
                    self.violation(
                        f"deadline of {self.p['deadline']:g}s passed with {len(self.pending)} of {total} jobs not terminal"
                    )
                    self.diagnose(stack, r)
                    break
                self.check_daemons(stack)
                # Restart Redis about a third of the way in (by jobs finished).
                if restarts_left and done >= total * (self.p["redis_restarts"] - restarts_left + 1) / (
                    self.p["redis_restarts"] + 2
                ):
                    self.say(f"  restarting redis-server ({done}/{total} jobs terminal)")
                    down = stack.restart_redis()
                    self.c["redis_restarts"] += 1
                    self.c["redis_down_s"] = round(self.c["redis_down_s"] + down, 2)
                    restarts_left -= 1
                    self.say(f"  redis-server back after {down:.2f}s")
                    self.check_api_recovers(stack)
                if now >= next_kill:
                    self.kill_one(stack)
                    next_kill = time.monotonic() + self.rng.uniform(self.p["kill_min"], self.p["kill_max"])
                if now >= next_report:
                    next_report = now + 10
                    self.say(
                        f"  {now - t0:5.0f}s: {done}/{total} terminal, {self.c['kills']} kills, "
                        f"{self.c['redis_restarts']} redis restarts"
                    )
                time.sleep(0.2)
        finally:
            self.c["elapsed_s"] = round(time.monotonic() - t0, 1)
            r.close()

    def diagnose(self, stack, r):
        """Where the unfinished jobs are (for the report of a stuck job)."""
        try:
            plists = {k: r.lrange(k, 0, -1) for k in r.scan_iter(f"{PREFIX}:processing:*")}
            registered = set(r.zrange(f"{PREFIX}:workers", 0, -1))
            queue = set(r.lrange(QUEUE, 0, -1))
            for jid in sorted(self.pending)[:10]:
                h = r.hgetall(f"{PREFIX}:job:{jid}")
                h.pop("spec", None)
                where = [k for k, v in plists.items() if jid in v]
                if jid in queue:
                    where.append(QUEUE)
                self.violation(
                    f"stuck job {jid} ({self.kinds[jid]}): {h}; in {where or 'no list'}; "
                    f"its worker {h.get('worker')} registered: {h.get('worker') in registered}"
                )
        except redis.exceptions.RedisError as e:
            self.violation(f"cannot diagnose: {e!r}")

    # -- verification --------------------------------------------------------

    def verify(self, stack):
        c = self.c
        r = stack.redis(socket_timeout=10)
        try:
            ids = list(self.expected)
            pipe = r.pipeline(transaction=False)
            for jid in ids:
                pipe.hmget(f"{PREFIX}:job:{jid}", "status", "attempts", "result", "lost")
            rows = pipe.execute()
            bad = []
            for jid, (status, attempts, result, lost) in zip(ids, rows):
                if status is None:
                    c["missing"] += 1
                    bad.append(f"{jid}: no job hash")
                    continue
                if status == "succeeded":
                    c["succeeded"] += 1
                    try:
                        value = json.loads(result)
                    except (TypeError, ValueError):
                        value = ("unparsable", result)
                    if value != self.expected[jid]:
                        c["wrong_results"] += 1
                        bad.append(f"{jid}: result {result!r}, expected {self.expected[jid]!r}")
                else:
                    c["not_succeeded"] += 1
                    err = r.hget(f"{PREFIX}:job:{jid}", "error")
                    bad.append(f"{jid} ({self.kinds[jid]}): status {status}, attempts {attempts}, error {err}")
                n = int(attempts or 0)
                c["max_attempts"] = max(c["max_attempts"], n)
                if n > 1:
                    c["jobs_run_more_than_once"] += 1
                    c["extra_runs"] += n - 1
                c["lost_worker_total"] += int(lost or 0)
            for line in bad[:10]:
                self.violation(line)
            if len(bad) > 10:
                self.violation(f"... and {len(bad) - 10} more bad jobs")

            # Every job in index:all, and in its status's own index if that
            # status has one (and no other: no job here passed through one).
            members = {s: set(r.zrange(f"{PREFIX}:index:{s}", 0, -1)) for s in INDEXED_STATUSES}
            everyone = set(r.zrange(f"{PREFIX}:index:all", 0, -1))
            index_bad = []
            for jid, (status, *_rest) in zip(ids, rows):
                listed = sorted(s for s in INDEXED_STATUSES if jid in members[s])
                want = [status] if status in INDEXED_STATUSES else []
                if listed != want or jid not in everyone:
                    index_bad.append(f"{jid}: status {status}, listed under {listed}, "
                                     f"in index:all: {jid in everyone}")
            for line in index_bad[:5]:
                self.violation(f"status index: {line}")
            if len(index_bad) > 5:
                self.violation(f"status index: ... and {len(index_bad) - 5} more")

            # None lost, nothing left over.
            hashes = set()
            for key in r.scan_iter(f"{PREFIX}:job:*", count=1000):
                rest = key[len(f"{PREFIX}:job:") :]
                if ":" not in rest:
                    hashes.add(rest)
            c["job_hashes"] = len(hashes)
            if hashes != set(ids):
                self.violation(
                    f"{len(hashes)} job hashes for {len(ids)} jobs submitted "
                    f"(unknown: {sorted(hashes - set(ids))[:5]}, missing: {sorted(set(ids) - hashes)[:5]})"
                )
            leftovers = {QUEUE: r.llen(QUEUE)}
            for key in r.scan_iter(f"{PREFIX}:processing:*"):
                leftovers[key] = r.llen(key)
            leftovers[f"{PREFIX}:scheduled"] = r.zcard(f"{PREFIX}:scheduled")
            leftovers[f"{PREFIX}:dead"] = r.zcard(f"{PREFIX}:dead")
            # Dead-lettered queue entries (malformed ids, ids without a hash).
            leftovers[f"{PREFIX}:deadletter"] = r.exists(f"{PREFIX}:deadletter")
            nonempty = {k: v for k, v in leftovers.items() if v}
            if nonempty:
                self.violation(f"not empty at the end: {nonempty}")
            status, q = stack.client.request("GET", "/v1/queue")
            if status != 200 or q.get("pending") != 0 or q.get("processing") != 0:
                self.violation(f"GET /v1/queue at the end -> {status} {q}")
        finally:
            r.close()

        if c["extra_runs"] > c["kills"]:
            self.violation(f"{c['extra_runs']} extra runs for {c['kills']} kills")
        if c["jobs_run_more_than_once"] > c["kills"]:
            self.violation(f"{c['jobs_run_more_than_once']} jobs run more than once for {c['kills']} kills")

        for line in stack.log_lines("worker"):
            msg = line.get("msg", "")
            if msg.startswith("discarded a late result"):
                c["late_results_discarded"] += 1
            elif msg.startswith("job given back after its executor died"):
                c["executor_deaths_requeued"] += 1
            elif msg.startswith("reaped workers"):
                c["reaped_requeued"] += int(line.get("requeued", 0))

        try:
            wait_for(lambda: not stack.strays_alive(), 10, "executors and jobs of killed workers to exit")
        except StackError:
            self.violation(f"executors or jobs outlived their killed worker or executor: {stack.strays_alive()}")
        self.check_daemons(stack)


def run(**params):
    """Run the chaos suite; returns a dict of counts. ``violations`` (a list
    of strings) is empty when every property held."""
    unknown = set(params) - set(DEFAULTS)
    if unknown:
        raise TypeError(f"unknown parameters: {sorted(unknown)}")
    p = dict(DEFAULTS, **params)
    if p["seed"] is None:
        p["seed"] = int(time.time())
    ch = Chaos(p)
    own_dir = p["workdir"] is None
    workdir = Path(tempfile.mkdtemp(prefix="stratq-chaos-")) if own_dir else Path(p["workdir"])
    ch.c["workdir"] = str(workdir)
    stack = Stack(
        p["binary"],
        workdir,
        worker_env={
            "STRATQ_HEARTBEAT_S": str(p["heartbeat_s"]),
            # The suite kills far more often than any deployment: let a job
            # lose its worker up to 10 times before it counts as a poison pill.
            "STRATQ_MAX_DELIVERIES": str(p["max_deliveries"]),
            "STRATQ_LOG_LEVEL": "warn",
        },
        api_env={"STRATQ_LOG_LEVEL": "warn"},
    )
    ch.say(
        f"chaos: {p['short']} short + {p['long']} long jobs, {p['workers']} workers, kill every "
        f"{p['kill_min']:g}-{p['kill_max']:g}s, {p['redis_restarts']} redis restart(s), seed {p['seed']}, "
        f"binary {p['binary']}, logs in {workdir / 'logs'}"
    )
    ch.say(
        f"  (STRATQ_HEARTBEAT_S={p['heartbeat_s']}; STRATQ_MAX_DELIVERIES={p['max_deliveries']} because "
        "this suite kills far more often than any deployment)"
    )
    try:
        stack.start_redis()
        stack.start_api()
        for _ in range(p["workers"]):
            stack.start_worker()
        ch.submit(stack)
        ch.say(f"  submitted {len(ch.expected)} jobs")
        ch.chaos(stack)
        if not ch.pending:
            ch.verify(stack)
    except StackError as e:
        ch.violation(f"harness: {e}")
    except (OSError, redis.exceptions.RedisError) as e:
        ch.violation(f"harness: {e!r}")
    finally:
        for problem in stack.close():
            ch.violation(problem)
        for report in stack.sanitizer_reports():
            ch.violation(f"sanitizer: {report}")
        if own_dir and not p["keep"] and not ch.c["violations"]:
            shutil.rmtree(workdir, ignore_errors=True)
    return ch.c


TABLE = [
    ("jobs submitted", "jobs"),
    ("  short / long", None),
    ("succeeded", "succeeded"),
    ("not succeeded", "not_succeeded"),
    ("wrong results", "wrong_results"),
    ("missing (lost)", "missing"),
    ("kills", "kills"),
    ("  worker / executor", None),
    ("redis restarts", "redis_restarts"),
    ("  redis away (s)", "redis_down_s"),
    ("jobs run more than once", "jobs_run_more_than_once"),
    ("extra runs (sum attempts-1)", "extra_runs"),
    ("max attempts of one job", "max_attempts"),
    ("worker-lost requeues (sum lost)", "lost_worker_total"),
    ("late results discarded", "late_results_discarded"),
    ("elapsed (s)", "elapsed_s"),
]


def format_table(c):
    rows = []
    for label, key in TABLE:
        if label.strip() == "short / long":
            value = f"{c['short_jobs']} / {c['long_jobs']}"
        elif label.strip() == "worker / executor":
            value = f"{c['worker_kills']} / {c['executor_kills']}"
        else:
            value = c.get(key, "")
        rows.append(f"  {label:<34} {value:>10}")
    return "\n".join(rows)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", dest="binary", default=DEFAULTS["binary"], help="stratq binary (default build/stratq)")
    ap.add_argument("--short", type=int, default=DEFAULTS["short"], help="short jobs (default 2000)")
    ap.add_argument("--long", type=int, default=DEFAULTS["long"], help="jobs of 1-3 s (default 20)")
    ap.add_argument("--workers", type=int, default=DEFAULTS["workers"])
    ap.add_argument("--kill-min", type=float, default=DEFAULTS["kill_min"], help="seconds between kills, at least")
    ap.add_argument("--kill-max", type=float, default=DEFAULTS["kill_max"], help="seconds between kills, at most")
    ap.add_argument("--redis-restarts", type=int, default=DEFAULTS["redis_restarts"])
    ap.add_argument("--deadline", type=float, default=DEFAULTS["deadline"], help="seconds (default 600)")
    ap.add_argument("--seed", type=int, default=None, help="random seed (default: the time)")
    ap.add_argument("--max-deliveries", type=int, default=DEFAULTS["max_deliveries"])
    ap.add_argument("--keep", action="store_true", help="keep the logs and Redis data even on success")
    args = ap.parse_args(argv)

    # SIGTERM (e.g. from make or CI) stops the run through the finally blocks.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    c = run(**vars(args))
    print()
    print(f"chaos results (seed {c['seed']}):")
    print(format_table(c))
    if c["violations"]:
        print(f"\nFAILED: {len(c['violations'])} violation(s); logs kept in {c['workdir']}")
        for v in c["violations"]:
            print(f"  - {v}")
        return 1
    print("\nOK: every job succeeded exactly once as recorded, none lost, extra runs <= kills")
    return 0


if __name__ == "__main__":
    sys.exit(main())
