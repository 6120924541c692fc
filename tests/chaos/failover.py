#!/usr/bin/env python3
"""Failover: is an acknowledged job ever lost when the Redis primary dies?

Starts 1 primary, 2 replicas and 3 sentinels on loopback
(tests/integration/sentinel.py), the stratq API and 2 workers pointed at
the sentinels (STRATQ_REDIS_SENTINELS), with STRATQ_REDIS_MIN_REPLICAS set
as asked. A few client threads submit no-op jobs steadily through
POST /v1/jobs, each with an id of its own; a 2xx answer makes the job
*acknowledged*, a 503 or a connection error *refused*. After --before
seconds the primary is SIGKILLed by pid; the clients go on submitting until
--after seconds past the sentinels' +switch-master, then everything
acknowledged is waited for and checked.

"Ran exactly once" is not read from Redis, which is what a failover may
lose: it is read from the workers' own logs, where each worker writes a
"job started" line (with the job's id) as it hands a job to its executor.
(A job itself can leave no trace outside Redis: the sandbox lets it write
only its own directory, and connect to nothing.)

Figures: submitted, acknowledged, refused (503) and connection errors
(before, during and after the failover), lost (acknowledged but its record
missing, or not `succeeded`, or never run), run more than once, refused
yet run, the seconds from the SIGKILL to +switch-master (the sentinels'
view) and from the first failed submit to the first acknowledged after it
(the clients' view).

On loopback a replica gets each write within a fraction of a millisecond,
so a plain SIGKILL rarely finds anything the replicas lack, whatever
STRATQ_REDIS_MIN_REPLICAS says. --cut S stages the case WAIT is for: for
the last S seconds before the kill no replica gets the primary's writes
(replicas paused by SIGSTOP, their links dropped by CLIENT KILL TYPE
replica, as when the primary's network to them breaks), and the replicas
resume right after the kill, in time to be promoted.

With --min-replicas 1 (or more) a lost acknowledged job is a violation
(exit 1), and so is one run twice: a worker runs a job only once a replica
has its start, and takes no other before a replica has its completion, so
a job taken during the cut is not run there and is queued again on the
promoted replica. With
--min-replicas 0 losses and second runs are figures, printed, not judged:
the trade-off measured. Either way a daemon that died by itself, an HTTP
answer other than 2xx or 503, a sanitizer report, or a stack that never
came back is a violation.

Usage: failover.py [--bin build/stratq] [--min-replicas 1] [--cut 0]
                   [--before 5] [--after 8] [--clients 3]
Importable: ``run(**params)`` returns a dict of counts (``violations``
lists what failed). All processes are started and stopped by pid.
"""

import argparse
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from sentinel import SentinelGroup  # noqa: E402
from stack import PREFIX, QUEUE, REPO_ROOT, TERMINAL, Stack, StackError, free_port, wait_for  # noqa: E402

# A no-op (its runs are counted in the workers' logs).
RUN_CODE = "def run(ctx):\n    return ctx.params['id']\n"

DEFAULTS = dict(
    binary=str(REPO_ROOT / "build" / "stratq"),
    min_replicas=1,
    wait_timeout_ms=2000,
    clients=3,
    interval=0.03,
    before=5.0,
    cut=0.0,
    after=8.0,
    drain=40.0,
    workers=2,
    workdir=None,
    keep=False,
    verbose=True,
)


class FailoverStack(Stack):
    """The chaos Stack with the sentinels in place of its redis-server:
    the daemons get a Redis URL whose host nothing listens on (with
    Sentinel it is not used) and the sentinels' addresses."""

    def __init__(self, binary, workdir, group, env):
        super().__init__(binary, workdir, worker_env=env, api_env=env)
        self.group = group
        self.redis_port = free_port()

    def redis(self, **kw):
        return self.group.client(**kw)


class Submit:
    __slots__ = ("id", "sent", "replied", "status")

    def __init__(self, job_id, sent, replied, status):
        self.id, self.sent, self.replied, self.status = job_id, sent, replied, status

    @property
    def acked(self):
        return self.status is not None and 200 <= self.status < 300


class Load:
    """``clients`` threads, each submitting one job every ``interval``
    seconds until ``stop``."""

    def __init__(self, client, clients, interval):
        self.client = client
        self.interval = interval
        self.submits = []  # list.append is atomic: the threads share it
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(k,), name=f"submit-{k}", daemon=True)
                        for k in range(clients)]

    def start(self):
        for t in self.threads:
            t.start()

    def _run(self, k):
        n = 0
        while not self.stopping.is_set():
            n += 1
            job_id = f"fo-{k}-{n}"
            spec = {"id": job_id, "code": RUN_CODE, "params": {"id": job_id},
                    "timeout_s": 60}
            sent = time.monotonic()
            try:
                status, _ = self.client.request("POST", "/v1/jobs", spec, timeout=10)
            except OSError:
                status = None
            self.submits.append(Submit(job_id, sent, time.monotonic(), status))
            self.stopping.wait(self.interval)

    def acked_count(self):
        return sum(1 for s in self.submits if s.acked)

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=15)
        return [t.name for t in self.threads if t.is_alive()]


class FailoverRun:
    def __init__(self, p):
        self.p = p
        self.say = print if p["verbose"] else (lambda *a, **k: None)
        self.c = dict(
            min_replicas=p["min_replicas"],
            submitted=0,
            acknowledged=0,
            refused=0,
            connection_errors=0,
            other_answers=0,
            refused_during_failover=0,
            refused_after_switch=0,
            acked_before_kill=0,
            acked_after_switch=0,
            lost=0,
            lost_missing=0,
            lost_not_succeeded=0,
            lost_never_ran=0,
            stuck=0,
            run_more_than_once=0,
            attempts_over_1=0,
            refused_yet_ran=0,
            failover_s=None,
            sentinels_agree_s=None,
            no_primary_s=None,
            kill_to_first_ack_s=None,
            submits_per_s=0.0,
            elapsed_s=0.0,
            violations=[],
        )

    def violation(self, msg):
        self.c["violations"].append(msg)
        self.say(f"VIOLATION: {msg}")

    def run(self, stack, group):
        p, c = self.p, self.c
        t0 = time.monotonic()
        load = Load(stack.client, p["clients"], p["interval"])
        load.start()
        try:
            # The load's schedule, not a guess: --before seconds of
            # submits, with at least one acknowledged.
            wait_for(lambda: time.monotonic() - t0 >= p["before"] and load.acked_count() > 0,
                     p["before"] + 30, "a first acknowledged submit")
            paused = []
            try:
                if p["cut"]:
                    paused = group.cut_replication()
                    t_cut = time.monotonic()
                    self.say(f"  {t_cut - t0:5.1f}s: replication cut ({len(paused)} replicas paused, "
                             "their links dropped)")
                    wait_for(lambda: time.monotonic() - t_cut >= p["cut"], p["cut"] + 5,
                             "the load while no replica takes the writes")
                c["acked_before_kill"] = load.acked_count()
                old = group.kill_primary()
                t_kill = time.monotonic()
            finally:
                for n in paused:
                    n.resume()
            self.say(f"  {t_kill - t0:5.1f}s: SIGKILLed the primary {old.addr} "
                     f"({c['acked_before_kill']} acknowledged so far)")
            f = group.wait_failover()
            c["failover_s"] = round(f.seconds, 2)
            c["sentinels_agree_s"] = round(f.agreed_at - f.started_at, 2)
            self.say(f"  {f.switched_at - t0:5.1f}s: +switch-master to {f.new.addr}, "
                     f"{f.seconds:.2f}s after the kill\n    {f.timeline()}")
            wait_for(lambda: time.monotonic() - f.switched_at >= p["after"], p["after"] + 5,
                     "the load after the failover")
        finally:
            stuck = load.stop()
            if stuck:
                self.violation(f"client threads still blocked after 15 s: {stuck}")
        c["elapsed_s"] = round(time.monotonic() - t0, 1)
        self.figures(load.submits, t_kill, f.switched_at)
        return load.submits

    def figures(self, submits, t_kill, t_switch):
        c = self.c
        c["submitted"] = len(submits)
        c["submits_per_s"] = round(len(submits) / max(c["elapsed_s"], 0.1), 1)
        failed = [s for s in submits if not s.acked]
        for s in submits:
            if s.acked:
                c["acknowledged"] += 1
                c["acked_after_switch"] += s.sent >= t_switch
            elif s.status == 503:
                c["refused"] += 1
            elif s.status is None:
                c["connection_errors"] += 1
            else:
                c["other_answers"] += 1
        for s in failed:
            if s.replied >= t_kill and s.sent < t_switch:
                c["refused_during_failover"] += 1
            elif s.sent >= t_switch:
                c["refused_after_switch"] += 1
        if c["other_answers"]:
            odd = Counter(s.status for s in submits if not s.acked and s.status not in (None, 503))
            self.violation(f"answers other than 2xx and 503: {dict(odd)}")
        # The clients' view: from the first submit that failed with the
        # primary gone to the first acknowledged one sent after the kill.
        down = [s for s in failed if s.replied >= t_kill]
        back = [s for s in submits if s.acked and s.sent >= t_kill]
        if back:
            c["kill_to_first_ack_s"] = round(min(s.replied for s in back) - t_kill, 2)
        if down and back:
            c["no_primary_s"] = round(min(s.replied for s in back) - min(s.sent for s in down), 2)
        if not back:
            self.violation("no submit was acknowledged after the failover")

    def drain(self, group, ids, timeout, quiet=10.0):
        """Waits until every job with a record is terminal, or until
        ``quiet`` seconds pass with the queue empty and no job ending (a
        job whose record says running while no worker runs it stays so:
        verify counts it), or ``timeout``."""
        pending = set(ids)
        last = {"n": None, "t": time.monotonic()}

        def settled():
            try:
                r = group.client(socket_timeout=5)
                try:
                    pipe = r.pipeline(transaction=False)
                    order = sorted(pending)
                    for jid in order:
                        pipe.hget(f"{PREFIX}:job:{jid}", "status")
                    pipe.llen(QUEUE)
                    *statuses, queued = pipe.execute()
                finally:
                    r.close()
            except (redis.exceptions.RedisError, StackError):
                return False
            for jid, status in zip(order, statuses):
                if status is None or status in TERMINAL:
                    pending.discard(jid)
            if len(pending) != last["n"] or queued:
                last.update(n=len(pending), t=time.monotonic())
            return not pending or time.monotonic() - last["t"] >= quiet

        wait_for(settled, timeout, lambda: f"{len(pending)} jobs to end: {sorted(pending)[:5]}", interval=0.2)

    def verify(self, group, submits, stack):
        c = self.c
        runs = Counter(line.get("id") for line in stack.log_lines("worker")
                       if line.get("msg") == "job started")
        r = group.client(socket_timeout=10)
        try:
            pipe = r.pipeline(transaction=False)
            for s in submits:
                pipe.hmget(f"{PREFIX}:job:{s.id}", "status", "attempts")
            rows = pipe.execute()
        finally:
            r.close()
        lost = []
        for s, (status, attempts) in zip(submits, rows):
            n = runs.get(s.id, 0)
            if not s.acked:
                c["refused_yet_ran"] += n > 0
                continue
            if status is None:
                c["lost_missing"] += 1
                lost.append(f"{s.id}: no record (ran {n} times)")
            elif status != "succeeded":
                c["lost_not_succeeded"] += 1
                c["stuck"] += status not in TERMINAL
                lost.append(f"{s.id}: {status} (ran {n} times)")
            elif n == 0:
                c["lost_never_ran"] += 1
                lost.append(f"{s.id}: succeeded but never ran")
            if n > 1:
                c["run_more_than_once"] += 1
                lost.append(f"{s.id}: ran {n} times")
            c["attempts_over_1"] += int(attempts or 0) > 1
        c["lost"] = c["lost_missing"] + c["lost_not_succeeded"] + c["lost_never_ran"]
        # A worker runs a job only once a replica has its start (WAIT), and
        # takes no other before one has its completion: a job taken while
        # no replica got the writes (--cut) is not run, and is queued again
        # on the promoted replica. So no job may run twice.
        c["reruns_allowed"] = 0
        if c["min_replicas"] >= 1 and (c["lost"] or c["run_more_than_once"] > c["reruns_allowed"]):
            self.violation(f"with STRATQ_REDIS_MIN_REPLICAS={c['min_replicas']}: {c['lost']} acknowledged "
                           f"jobs lost, {c['run_more_than_once']} run more than once "
                           f"(at most {c['reruns_allowed']} may): {lost[:10]}")
        c["lost_examples"] = lost[:10]

    def check_daemons(self, stack):
        for proc in stack.procs:
            if not proc.alive():
                self.violation(f"{proc.kind} pid {proc.pid} exited by itself with {proc.popen.returncode}; "
                               f"log {proc.log_path}:\n{proc.tail(15)}")


def run(**params):
    """Runs one failover; returns a dict of counts. ``violations`` (a list
    of strings) is empty when every property held."""
    unknown = set(params) - set(DEFAULTS)
    if unknown:
        raise TypeError(f"unknown parameters: {sorted(unknown)}")
    p = dict(DEFAULTS, **params)
    fo = FailoverRun(p)
    own_dir = p["workdir"] is None
    workdir = Path(tempfile.mkdtemp(prefix="stratq-failover-")) if own_dir else Path(p["workdir"])
    fo.c["workdir"] = str(workdir)
    group = SentinelGroup(workdir / "redis")
    env = {k: v for k, v in group.stratq_env().items() if k != "STRATQ_REDIS_URL"}
    env.update({
        "STRATQ_REDIS_MIN_REPLICAS": str(p["min_replicas"]),
        "STRATQ_REDIS_WAIT_TIMEOUT_MS": str(p["wait_timeout_ms"]),
        "STRATQ_PRELOAD": "",
    })
    stack = FailoverStack(p["binary"], workdir, group, env)
    fo.say(f"failover: STRATQ_REDIS_MIN_REPLICAS={p['min_replicas']}, {p['clients']} clients, "
           f"{p['workers']} workers, SIGKILL of the primary after {p['before']:g}s, "
           f"{p['after']:g}s of load after the switch; binary {p['binary']}, logs in {workdir}")
    try:
        group.start()
        stack.start_api()
        for _ in range(p["workers"]):
            stack.start_worker()
        submits = fo.run(stack, group)
        fo.drain(group, [s.id for s in submits], p["drain"])
        fo.verify(group, submits, stack)
        fo.check_daemons(stack)
    except StackError as e:
        fo.violation(f"harness: {e}")
    except (OSError, redis.exceptions.RedisError) as e:
        fo.violation(f"harness: {e!r}")
    finally:
        for problem in stack.close():
            fo.violation(problem)
        group.stop()
        for report in stack.sanitizer_reports():
            fo.violation(f"sanitizer: {report}")
        if own_dir and not p["keep"] and not fo.c["violations"]:
            shutil.rmtree(workdir, ignore_errors=True)
    return fo.c


TABLE = [
    ("STRATQ_REDIS_MIN_REPLICAS", "min_replicas"),
    ("submitted", "submitted"),
    ("acknowledged (2xx)", "acknowledged"),
    ("  before the kill", "acked_before_kill"),
    ("  sent after +switch-master", "acked_after_switch"),
    ("refused (503)", "refused"),
    ("connection errors", "connection_errors"),
    ("refused or failed during the failover", "refused_during_failover"),
    ("refused or failed after the switch", "refused_after_switch"),
    ("LOST (acknowledged)", "lost"),
    ("  no record", "lost_missing"),
    ("  not succeeded", "lost_not_succeeded"),
    ("  succeeded, never ran", "lost_never_ran"),
    ("  of those, stuck queued or running", "stuck"),
    ("acknowledged, run more than once", "run_more_than_once"),
    ("acknowledged, attempts > 1", "attempts_over_1"),
    ("refused, yet ran", "refused_yet_ran"),
    ("SIGKILL to +switch-master (s)", "failover_s"),
    ("SIGKILL to all sentinels agreeing (s)", "sentinels_agree_s"),
    ("first failed submit to next ack (s)", "no_primary_s"),
    ("SIGKILL to first ack after (s)", "kill_to_first_ack_s"),
    ("submits/s", "submits_per_s"),
    ("elapsed (s)", "elapsed_s"),
]


def format_table(c):
    return "\n".join(f"  {label:<40} {c.get(key) if c.get(key) is not None else '-':>8}" for label, key in TABLE)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", dest="binary", default=DEFAULTS["binary"], help="stratq binary (default build/stratq)")
    ap.add_argument("--min-replicas", type=int, default=DEFAULTS["min_replicas"],
                    help="STRATQ_REDIS_MIN_REPLICAS (default 1); with 0 losses are reported, not judged")
    ap.add_argument("--wait-timeout-ms", type=int, default=DEFAULTS["wait_timeout_ms"])
    ap.add_argument("--clients", type=int, default=DEFAULTS["clients"], help="submitting threads (default 3)")
    ap.add_argument("--interval", type=float, default=DEFAULTS["interval"],
                    help="pause of each client between submits, s (default 0.03)")
    ap.add_argument("--before", type=float, default=DEFAULTS["before"], help="load before the kill, s (default 5)")
    ap.add_argument("--cut", type=float, default=DEFAULTS["cut"],
                    help="seconds before the kill for which no replica gets the primary's writes "
                         "(replicas paused, links dropped); default 0: a plain SIGKILL")
    ap.add_argument("--after", type=float, default=DEFAULTS["after"],
                    help="load after +switch-master, s (default 8)")
    ap.add_argument("--drain", type=float, default=DEFAULTS["drain"], help="longest wait for the jobs, s")
    ap.add_argument("--keep", action="store_true", help="keep the logs even on success")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    c = run(**vars(args))
    print(f"\nfailover results (STRATQ_REDIS_MIN_REPLICAS={c['min_replicas']}):")
    print(format_table(c))
    for line in c.get("lost_examples", []):
        print(f"  - {line}")
    if c["violations"]:
        print(f"\nFAILED: {len(c['violations'])} violation(s); logs kept in {c['workdir']}")
        for v in c["violations"]:
            print(f"  - {v}")
        return 1
    if c["min_replicas"] >= 1:
        print("\nOK: every acknowledged job succeeded exactly once")
    else:
        print(f"\nreported, not judged: {c['lost']} acknowledged jobs lost, "
              f"{c['run_more_than_once']} run more than once")
    return 0


if __name__ == "__main__":
    sys.exit(main())
