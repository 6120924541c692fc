"""`make bench-exec`: stratq warm, stratq cold and RQ side by side (issue 5).

One run, one redis-server (loopback, free port, no persistence), FLUSHALL
between systems. Each system gets 2 workers and runs the same job functions:
a no-op (returns its parameter) and a small pandas job (rolling mean over
1,000 rows); the latency job's first line records time.time() * 1000.

  stratq warm   2 x `stratq worker` (STRATQ_MODE=warm, STRATQ_PRELOAD=numpy,pandas)
                behind one `stratq api`
  stratq cold   2 x `stratq worker` (STRATQ_MODE=cold: fork+exec python3 per job)
  stratq warm, always-on layers only: warm again with
                STRATQ_SANDBOX_DISABLE=namespaces,cgroup,uid, to show what the
                optional sandbox layers cost (the sandbox effect lines)
  RQ            2 x RQ 1.13 Worker (bench/rq_worker.py) with numpy, pandas and
                the job module (bench/rq_jobs.py) imported before it starts;
                RQ's default Worker forks a work horse per job

Per system:
  1. start the workers, wait until both are registered and idle (warm: their
     spare child forked), read the idle RSS (/proc/<pid>/status VmRSS);
  2. warm-up: a few jobs of each kind, not counted;
  3. throughput: enqueue N jobs at once (stratq: POST /v1/jobs/batch; RQ:
     Queue.enqueue_many, one pipeline) and time from the enqueue until all
     are finished (completion counters polled every 5 ms); jobs/s;
  4. latency on an idle queue: one job at a time, LATENCY_N times.
     stratq: POST /v1/jobs?wait=30 on a keep-alive connection, its answer
     carries the result; RQ: enqueue, then poll the job's status every 1 ms
     and read the result. dequeue -> first line = the job's time.time() * 1000
     minus stratq's started_ms (set right after BLMOVE; ms resolution) or
     RQ's dequeue time (noted in the worker right after BLPOP + job fetch).

After the warm phases, where one job's latency goes (bench/latparts.py): 1 warm
worker, the latency job one at a time, back to back and then paced, untraced
and then under `perf trace record`, cut into stages at system calls along the
job's path. Without perf (or the right to trace) the run goes on without it;
`python3 bench/latparts.py` runs this phase alone.

Prints the table and writes it to docs/benchmarks-exec.md with the machine and
the configuration. Never fails on a target; fails (exit 1) if a job does not
succeed or a phase does not finish. Every wait has a deadline; the whole run
is bounded by BENCH_DEADLINE_S (default 450 s). Stops only what it started,
by pid.
"""

import datetime
import http.client
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import redis

import cpuparts
import latparts

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(os.environ.get("STRATQ_BIN", ROOT / "build" / "stratq"))
PYTHON = "/usr/bin/python3"
DOC = ROOT / "docs" / "benchmarks-exec.md"
EXECUTOR = BIN.parent / "stratq-executor"
# The fork floor: FLOOR_ROUNDS runs of FLOOR_FORKS forks each (median run).
FLOOR_FORKS = int(os.environ.get("BENCH_FLOOR_FORKS", "1000"))
FLOOR_ROUNDS = int(os.environ.get("BENCH_FLOOR_ROUNDS", "3"))
PROFILE = os.environ.get("BENCH_PROFILE", "1") != "0"
# Where one job's latency goes (bench/latparts.py): BREAKDOWN_N jobs one at
# a time on 1 warm worker, back to back as in the latency figures and then
# BREAKDOWN_PAUSE_S apart (the executor idle, its spare waiting), untraced
# and then under `perf trace record`.
BREAKDOWN_N = int(os.environ.get("BENCH_BREAKDOWN_N", "100"))
BREAKDOWN_PAUSE_S = 0.05
BREAKDOWN_MODES = (("back to back", 0.0), (f"{BREAKDOWN_PAUSE_S * 1000:.0f} ms apart", BREAKDOWN_PAUSE_S))

WORKERS = 2
# Jobs per throughput phase: (no-op, pandas) per system. Cold pays a fresh
# interpreter (and for pandas its ~0.5 s import) per job, so it gets fewer.
N = {
    "warm": (int(os.environ.get("BENCH_WARM_NOOP", "600")), int(os.environ.get("BENCH_WARM_PANDAS", "600"))),
    "cold": (int(os.environ.get("BENCH_COLD_NOOP", "150")), int(os.environ.get("BENCH_COLD_PANDAS", "30"))),
    "rq": (int(os.environ.get("BENCH_RQ_NOOP", "600")), int(os.environ.get("BENCH_RQ_PANDAS", "600"))),
}
# Each throughput phase runs REPEATS times; the table shows the median rate.
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
LATENCY_N = int(os.environ.get("BENCH_LATENCY_N", "200"))
COLD_LATENCY_N = int(os.environ.get("BENCH_COLD_LATENCY_N", "200"))
DEADLINE_S = int(os.environ.get("BENCH_DEADLINE_S", "450"))
PHASE_TIMEOUT_S = 90
RQ_QUEUE = "bench"

# The job functions as stratq strategies; bench/rq_jobs.py has the same
# statements as RQ functions.
JOB_CODE = {
    "noop": "def run(ctx):\n    return ctx.params['i']\n",
    "pandas": ("import pandas as pd\n\n\ndef run(ctx):\n"
               "    s = pd.Series(range(1000), dtype='float64')\n"
               "    return float(s.rolling(20).mean().iloc[-1])\n"),
    "first_line": "import time\n\n\ndef run(ctx):\n    t = time.time() * 1000\n    return t\n",
}
RQ_FUNC = {"noop": "rq_jobs.noop", "pandas": "rq_jobs.pandas_job", "first_line": "rq_jobs.first_line"}
PANDAS_EXPECTED = float(sum(range(980, 1000)) / 20)

STARTED = []  # every Popen this script started, stopped at exit by pid


class BenchError(Exception):
    pass


def log(msg):
    print(f"bench-exec: {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout, what, interval=0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise BenchError(f"timed out after {timeout} s waiting for {what}")


def pct(values, p):
    """Nearest-rank percentile."""
    v = sorted(values)
    if not v:
        return float("nan")
    k = max(0, min(len(v) - 1, int(-(-p * len(v) // 100)) - 1))
    return v[k]


# --- processes ---------------------------------------------------------------

def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def descendants(pid):
    out = []
    for c in children(pid):
        out.append(c)
        out.extend(descendants(c))
    return out


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def pss_kb(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_ms(pids):
    """CPU time (user + system, including reaped children) of pids, in ms."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return total * 1000 / CLK_TCK


def log_failure(error, workdir, say=None):
    """Says (with say, default log) why the run failed, with the tail of each
    log in workdir."""
    say = say or log
    say(f"FAILED: {error}")
    for name in sorted(os.listdir(workdir)):
        if name.endswith(".log"):
            text = Path(workdir, name).read_text(errors="replace").strip()
            if text:
                say(f"--- {name} (tail)\n{text[-1500:]}")


def arm_deadline(seconds):
    """The whole run ends with BenchError after seconds (SIGALRM); SIGTERM
    ends it too, so that the finally blocks stop what was started."""

    def on_alarm(signum, frame):
        raise BenchError(f"the whole run passed its deadline of {seconds} s")

    def on_term(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_term)
    signal.alarm(seconds)


def start_redis(port, workdir):
    """A throwaway redis-server on loopback: no persistence, logs in workdir."""
    return start(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                  "--appendonly", "no", "--dir", workdir, "--logfile", os.path.join(workdir, "redis.log")])


def start(argv, env=None, log_path=None):
    out = open(log_path, "wb") if log_path else subprocess.DEVNULL
    p = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT if log_path else None,
                         stdin=subprocess.DEVNULL)
    p.log_path = log_path
    STARTED.append(p)
    return p


def stop(procs, timeout=30):
    """SIGTERM each process (and, if it does not exit in time, SIGKILL it and
    any descendants it left)."""
    procs = [p for p in procs if p is not None]
    kids = {p.pid: descendants(p.pid) for p in procs}
    for p in procs:
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log(f"pid {p.pid} ({p.args[0]}) did not stop on SIGTERM in {timeout} s; SIGKILL")
            p.kill()
            p.wait(timeout=10)
    for p in procs:
        for k in kids[p.pid]:
            try:
                with open(f"/proc/{k}/stat") as f:
                    st = f.read()
            except OSError:
                continue
            # Still alive (and not someone else's reused pid: its parent is gone
            # or it is in our process tree); kill it.
            if st.rsplit(")", 1)[1].split()[0] != "Z":
                log(f"pid {k} (left by {p.pid}) still alive after its parent stopped; SIGKILL")
                try:
                    os.kill(k, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if p in STARTED:
            STARTED.remove(p)


def check_alive(procs, what):
    for p in procs:
        if p.poll() is not None:
            tail = ""
            if p.log_path and os.path.exists(p.log_path):
                tail = Path(p.log_path).read_text(errors="replace")[-2000:]
            raise BenchError(f"{what} pid {p.pid} exited with {p.returncode}:\n{tail}")


# --- stratq --------------------------------------------------------------------

class Api:
    def __init__(self, port):
        self.port = port
        self.conn = None

    def request(self, method, path, body=None, timeout=60):
        data = json.dumps(body).encode() if body is not None else None
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
            try:
                self.conn.request(method, path, body=data,
                                  headers={"Content-Type": "application/json"} if data else {})
                resp = self.conn.getresponse()
                raw = resp.read()
                if resp.getheader("Connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return resp.status, json.loads(raw) if raw else None
            except (http.client.HTTPException, ConnectionError, socket.timeout):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise


def stratq_env(mode):
    env = dict(os.environ)
    env["STRATQ_MODE"] = mode
    env["STRATQ_LOG_LEVEL"] = "warn"
    env.pop("STRATQ_PRELOAD", None)  # the default: numpy,pandas
    return env


# A job's terminal statuses (GET /v1/statuses, the terminal ones).
TERMINAL = frozenset({"succeeded", "failed", "timeout", "memory_exceeded", "cpu_exceeded",
                      "output_exceeded", "crashed", "cancelled", "dead"})


class EventCounter:
    """Counts the terminal job events on the events channel, from a
    subscription of the benchmark's own: the moment a job is recorded,
    without a command per poll (the stats hash's counters trail by up to a
    heartbeat, docs/protocol.md)."""

    def __init__(self, r):
        self.count = 0
        self.pubsub = r.pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe("stratq:{python_execution_queue}:events")
        # Subscribed before the first submit: wait for the confirmation.
        deadline = time.monotonic() + 10
        while not self.pubsub.subscribed and time.monotonic() < deadline:
            self.pubsub.get_message(timeout=0.05)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            for m in self.pubsub.listen():
                if m.get("type") == "message" and json.loads(m["data"]).get("status") in TERMINAL:
                    self.count += 1
        except Exception:  # the benchmark is over and Redis gone
            pass


_counters = {}


def stratq_completed(r):
    """Jobs recorded finished since the first call for r's Redis."""
    key = id(r.connection_pool)
    if key not in _counters:
        _counters[key] = EventCounter(r)
    return _counters[key].count


def stratq_ready(r, workers, mode):
    if r.zcard("stratq:{python_execution_queue}:workers") != len(workers):
        return False
    for k in r.keys("stratq:{python_execution_queue}:worker:*"):
        if r.hget(k, "state") != b"idle":
            return False
    for w in workers:
        execs = children(w.pid)
        if not execs:
            return False
        if mode == "warm" and not any(children(e) for e in execs):
            return False
    return True


def stratq_rss(workers, mode):
    sup, exe, spare, pss, spare_pss = [], [], [], [], []
    for w in workers:
        sup.append(rss_kb(w.pid))
        execs = children(w.pid)
        exe.append(sum(rss_kb(e) for e in execs))
        spares = [c for e in execs for c in children(e)]
        spare.append(sum(rss_kb(c) for c in spares))
        pss.append(pss_kb(w.pid) + sum(pss_kb(e) for e in execs))
        spare_pss.append(sum(pss_kb(c) for c in spares))
    warm = mode == "warm"
    return {"supervisor": statistics.mean(sup), "executor": statistics.mean(exe),
            "spare": statistics.mean(spare) if warm else None, "pss": statistics.mean(pss),
            "spare_pss": statistics.mean(spare_pss) if warm else None,
            "worker_pss": statistics.mean(p + s for p, s in zip(pss, spare_pss))}


def stratq_cpu_pids(workers, others):
    return [w.pid for w in workers] + [e for w in workers for e in children(w.pid)] + \
        [p.pid for p in others]


def stratq_submit_batch(api, kind, n):
    ids = []
    for off in range(0, n, 1000):
        jobs = [{"code": JOB_CODE[kind], "params": {"i": i}} for i in range(off, min(n, off + 1000))]
        status, body = api.request("POST", "/v1/jobs/batch", {"jobs": jobs})
        if status not in (200, 201) or not body:
            raise BenchError(f"POST /v1/jobs/batch answered {status}: {str(body)[:300]}")
        items = body.get("jobs", body.get("results", body)) if isinstance(body, dict) else body
        for it in items:
            if "id" not in it:
                raise BenchError(f"batch item refused: {it}")
            ids.append(it["id"])
    return ids


def stratq_statuses(r, ids):
    p = r.pipeline(transaction=False)
    for i in ids:
        p.hmget(f"stratq:{{python_execution_queue}}:job:{i}", "status", "result", "error")
    return p.execute()


def stratq_throughput(api, r, workers, kind, n, others=()):
    pids = stratq_cpu_pids(workers, others)
    cpu0 = cpu_ms(pids)
    base = stratq_completed(r)
    t0 = time.monotonic()
    ids = stratq_submit_batch(api, kind, n)
    t_enq = time.monotonic() - t0
    deadline = time.monotonic() + PHASE_TIMEOUT_S
    while stratq_completed(r) < base + n:
        if time.monotonic() > deadline:
            stuck(r, ids, workers, f"stratq {kind} throughput")
        check_alive(workers, "stratq worker")
        time.sleep(0.005)
    elapsed = time.monotonic() - t0
    cpu = cpu_ms(pids) - cpu0
    # The count may include a late event of the phase before (a job of its
    # own counted here): the last of these may still be finishing.
    wait_for(lambda: all(s[0] is not None and s[0].decode() in TERMINAL
                         for s in stratq_statuses(r, ids)), 30, f"stratq {kind}: every job finished")
    bad = [(i, s) for i, s in zip(ids, stratq_statuses(r, ids)) if s[0] != b"succeeded"]
    if bad:
        raise BenchError(f"{len(bad)} of {n} {kind} jobs did not succeed, e.g. {bad[0]}")
    if kind == "pandas":
        res = stratq_statuses(r, ids[:1])[0][1]
        if abs(float(res) - PANDAS_EXPECTED) > 1e-9:
            raise BenchError(f"pandas job returned {res!r}, expected {PANDAS_EXPECTED}")
    return {"n": n, "seconds": elapsed, "rate": n / elapsed, "enqueue_s": t_enq, "cpu_ms": cpu / n}


def stuck(r, ids, workers, what):
    st = stratq_statuses(r, ids)
    hist = {}
    for s in st:
        hist[s[0]] = hist.get(s[0], 0) + 1
    wk = {k.decode(): r.hgetall(k) for k in r.keys("stratq:{python_execution_queue}:worker:*")}
    q = r.llen("python_execution_queue")
    raise BenchError(f"{what}: not finished after {PHASE_TIMEOUT_S} s; statuses {hist}; "
                     f"queue length {q}; workers {wk}; worker trees "
                     f"{[(w.pid, descendants(w.pid)) for w in workers]}")


def stratq_latency(api, r, n, pause=0.0):
    """n latency jobs one at a time, each pause s after the one before:
    dequeue -> first line and submit -> result, ms each."""
    d2f, s2r = [], []
    for i in range(n):
        time.sleep(pause)
        t0 = time.perf_counter()
        status, body = api.request("POST", "/v1/jobs?wait=30",
                                   {"code": JOB_CODE["first_line"], "params": {"i": i}})
        t1 = time.perf_counter()
        if status not in (200, 201) or not body or body.get("status") != "succeeded":
            raise BenchError(f"latency job {i}: {status} {str(body)[:500]}")
        # started_us: when the worker took the job, to the µs (start.lua).
        started = int(r.hget(f"stratq:{{python_execution_queue}}:job:{body['id']}", "started_us"))
        d2f.append(float(body["result"]) - started / 1000)
        s2r.append((t1 - t0) * 1000)
    return d2f, s2r


def repeat(fn):
    """Runs a throughput phase REPEATS times; the median run, with all rates."""
    runs = [fn() for _ in range(REPEATS)]
    med = sorted(runs, key=lambda x: x["rate"])[len(runs) // 2]
    return dict(med, rates=[x["rate"] for x in runs])


def fork_floor(n, env):
    """`stratq-executor --fork-floor n` with the warm workers' settings: its
    JSON line (CPU and wall per fork+exit+wait of the executor's own
    interpreter, set up as for jobs). The executor wants a socket on fd 3,
    as the worker gives it."""
    ours, theirs = socket.socketpair()
    out_r, out_w = os.pipe()
    try:
        pid = os.posix_spawn(str(EXECUTOR), [str(EXECUTOR), "--fork-floor", str(n)],
                             dict(env, STRATQ_LOG_LEVEL="warn"),
                             file_actions=[(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                                           (os.POSIX_SPAWN_DUP2, out_w, 1),
                                           (os.POSIX_SPAWN_DUP2, theirs.fileno(), 3)])
        os.close(out_w)
        out_w = -1
        with os.fdopen(out_r) as f:
            out_r = -1
            text = f.read()
        _, status = os.waitpid(pid, 0)
    finally:
        ours.close()
        theirs.close()
        for fd in (out_r, out_w):
            if fd >= 0:
                os.close(fd)
    lines = [line for line in text.splitlines() if line.startswith("{")]
    if os.waitstatus_to_exitcode(status) != 0 or not lines:
        raise BenchError(f"stratq-executor --fork-floor {n} failed: {text[-500:]}")
    return json.loads(lines[-1])


def measure_floor():
    """The median of FLOOR_ROUNDS fork-floor runs, with every run's CPU."""
    log(f"fork floor: {FLOOR_ROUNDS} x {FLOOR_FORKS} forks of the warm executor's interpreter")
    runs = [fork_floor(FLOOR_FORKS, stratq_env("warm")) for _ in range(FLOOR_ROUNDS)]
    med = sorted(runs, key=lambda x: x["cpu_us"])[len(runs) // 2]
    return dict(med, runs=[x["cpu_us"] for x in runs])


def profiled_noop(api, r, workers, api_p, redis_p, n, tmp):
    """One more no-op throughput phase (not among the measured ones) under
    a whole-system profile: {part: CPU µs per job} (bench/cpuparts.py), or
    None without perf."""
    data = os.path.join(tmp, "noop.perf")
    rec = cpuparts.start(data)
    if rec is None:
        log("no CPU breakdown: perf is missing or may not profile the whole system")
        return None
    try:
        time.sleep(0.5)  # perf is recording
        stratq_throughput(api, r, workers, "noop", n)
    finally:
        cpuparts.stop(rec)
    roles = {os.getpid(): "benchmark client", api_p.pid: "API", redis_p.pid: "Redis"}
    for w in workers:
        roles[w.pid] = "worker"
        for e in children(w.pid):
            roles[e] = "executor"
    parts = cpuparts.breakdown(data, roles)
    return {k: v * 1e6 / n for k, v in parts.items()}


def latency_breakdown(rurl, r, api, api_p, tmp):
    """Where one job's latency goes (bench/latparts.py): 1 warm worker on an
    idle queue, BREAKDOWN_N latency jobs one at a time in each of
    BREAKDOWN_MODES, untraced, then again under `perf trace record` of this
    client, `stratq api`, the worker and its executor and job children.
    {"modes": [(title, the stages with what was measured of the same
    jobs)]}, or {"why": ...} when perf cannot trace."""
    log(f"latency breakdown: 1 warm worker, {BREAKDOWN_N} jobs in each of {len(BREAKDOWN_MODES)} paces, "
        "untraced, then under perf trace")
    data, perf_log = os.path.join(tmp, "latency.perf"), os.path.join(tmp, "perf-trace.log")
    why = latparts.cannot_trace(data)
    if why:
        return no_breakdown(why)
    r.flushall()
    worker = start([str(BIN), "worker", "--redis-url", rurl], env=stratq_env("warm"),
                   log_path=os.path.join(tmp, "worker-breakdown.log"))
    try:
        wait_for(lambda: check_alive([worker], "stratq worker") or stratq_ready(r, [worker], "warm"),
                 60, "an idle stratq warm worker")
        stratq_latency(api, r, 4)  # warm-up
        plain = [stratq_latency(api, r, BREAKDOWN_N, pause) for _, pause in BREAKDOWN_MODES]
        # Not traced: the spare waiting now (the first jobs under the trace
        # are not counted).
        executor = children(worker.pid)[0]
        roles = {os.getpid(): "client", api_p.pid: "API", worker.pid: "worker", executor: "executor"}
        rec = latparts.start(data, list(roles), perf_log)
        try:
            time.sleep(0.5)  # perf is recording
            stratq_latency(api, r, 4)
            traced = [stratq_latency(api, r, BREAKDOWN_N, pause) for _, pause in BREAKDOWN_MODES]
        finally:
            status = latparts.stop(rec)
        check_alive([worker], "stratq worker")
        if status != 0:
            return no_breakdown(f"perf trace record exited with {status}: "
                                + latparts.first_line(Path(perf_log).read_text(errors="replace")))
        if api.conn is None or api.conn.sock is None:
            return no_breakdown("the client's HTTP connection was closed")
        try:
            parts = latparts.breakdown(data, roles, api.conn.sock.fileno(), [BREAKDOWN_N] * len(traced))
        except (OSError, subprocess.SubprocessError) as e:
            return no_breakdown(f"perf trace -i failed: {e}")
        if not all(p["jobs"] for p in parts):
            return no_breakdown("at one pace, no traced job had every landmark in the recording")
        modes = []
        for (title, _), p, (d2f, s2r), (_, plain_s2r) in zip(BREAKDOWN_MODES, parts, traced, plain):
            # What was measured of the jobs that had every landmark, in µs.
            modes.append((title, dict(p, d2f=[d2f[i] * 1000 for i in p["index"]],
                                      s2r=[s2r[i] * 1000 for i in p["index"]],
                                      s2r_plain=[x * 1000 for x in plain_s2r])))
        return {"modes": modes}
    finally:
        stop([worker])


def no_breakdown(why):
    log(f"no latency breakdown: {why}")
    return {"why": why}


def breakdown_summary(b):
    """One line: the latency and its waits at each pace of the breakdown."""
    if "why" in b:
        return f"Where the latency goes: not measured in this run ({b['why']})."
    med = statistics.median
    paces = []
    for title, p in b["modes"]:
        waits = [f"{med(v) / 1000:.2f} ms {label.removeprefix('of which ')}"
                 for label, v, split, _ in p["stages"] if split]
        child = med([d - t for d, t in zip(p["d2f"], p["dequeue"])])
        paces.append(f"{title}, dequeue -> first line {med(p['d2f']) / 1000:.2f} ms ({child / 1000:.2f} ms "
                     f"of it in the job child after its read), submit -> result {med(p['s2r']) / 1000:.2f} "
                     "ms; waits (medians): " + ", ".join(waits))
    return ("Where the latency goes, measured (1 warm worker under perf trace, the section "
            "'Where one job's latency goes'): " + "; ".join(paces) + ".")


def breakdown_details(b):
    """The latency breakdown as markdown (or why there is none)."""
    if "why" in b:
        return f"No breakdown in this run: {b['why']}."
    left = ", ".join(f"{p['missing']} {title}" for title, p in b["modes"] if p["missing"])
    return ("Jobs with every landmark: " + ", ".join(f"{p['jobs']} {title}" for title, p in b["modes"])
            + (f" (left out, a landmark missing: {left})" if left else "") + ".\n\n"
            + latparts.table(b["modes"]))


# The sandbox's effect: warm workers once more with only the layers that need
# no privilege (as in an unprivileged pod), against the default run above
# with every layer this host allows.
ALWAYS_ON = {"STRATQ_SANDBOX_DISABLE": "namespaces,cgroup,uid"}


def run_stratq(mode, rurl, r, api, tmp, others, extra_env=None, label=None, profile=False):
    label = label or mode
    log(f"stratq {label}: starting {WORKERS} workers")
    r.flushall()
    env = dict(stratq_env(mode), **(extra_env or {}))
    workers = [start([str(BIN), "worker", "--redis-url", rurl], env=env,
                     log_path=os.path.join(tmp, f"worker-{label}-{k}.log")) for k in range(WORKERS)]
    try:
        wait_for(lambda: check_alive(workers, "stratq worker") or stratq_ready(r, workers, mode),
                 60, f"{WORKERS} idle stratq {mode} workers")
        time.sleep(0.5)
        rss = stratq_rss(workers, mode)
        out = {"rss": rss}
        for kind in ("noop", "pandas", "first_line"):
            stratq_throughput(api, r, workers, kind, 2 * WORKERS)  # warm-up
        n_noop, n_pandas = N[mode]
        log(f"stratq {mode}: {REPEATS} x {n_noop} no-op jobs")
        out["noop"] = repeat(lambda: stratq_throughput(api, r, workers, "noop", n_noop, others))
        log(f"stratq {mode}: {REPEATS} x {n_pandas} pandas jobs")
        out["pandas"] = repeat(lambda: stratq_throughput(api, r, workers, "pandas", n_pandas, others))
        wait_for(lambda: stratq_ready(r, workers, mode), 30, "workers idle again")
        time.sleep(0.3)
        ln = LATENCY_N if mode == "warm" else COLD_LATENCY_N
        log(f"stratq {mode}: latency, {ln} jobs one at a time")
        out["d2f"], out["s2r"] = stratq_latency(api, r, ln)
        check_alive(workers, "stratq worker")
        if profile:
            log(f"stratq {mode}: {n_noop} no-op jobs under a whole-system profile")
            out["profile"] = profiled_noop(api, r, workers, others[0], others[1], n_noop, tmp)
        wait_for(lambda: stratq_ready(r, workers, mode), 30, "workers idle again")
        time.sleep(0.3)
        out["rss_after"] = stratq_rss(workers, mode)
        return out
    finally:
        stop(workers)
        for w in workers:
            if w.returncode not in (0, None):
                log(f"WARNING: stratq {mode} worker pid {w.pid} exited {w.returncode}; log tail:\n"
                    + Path(w.log_path).read_text(errors="replace")[-2000:])


# --- RQ --------------------------------------------------------------------------

def rq_ready(r):
    names = r.smembers("rq:workers")
    if len(names) != WORKERS:
        return False
    return all(r.hget(k, "state") == b"idle" for k in names)


def rq_throughput(q, r, workers, kind, n, others=()):
    from rq.job import Job
    from rq.queue import Queue
    fin, failed = f"rq:finished:{RQ_QUEUE}", f"rq:failed:{RQ_QUEUE}"
    pids = [w.pid for w in workers] + [p.pid for p in others]
    cpu0 = cpu_ms(pids)
    base = r.zcard(fin) + r.zcard(failed)
    t0 = time.monotonic()
    jobs = q.enqueue_many([Queue.prepare_data(RQ_FUNC[kind], args=(i,)) for i in range(n)])
    t_enq = time.monotonic() - t0
    deadline = time.monotonic() + PHASE_TIMEOUT_S
    while r.zcard(fin) + r.zcard(failed) < base + n:
        if time.monotonic() > deadline:
            raise BenchError(f"RQ {kind}: not finished after {PHASE_TIMEOUT_S} s "
                             f"(finished {r.zcard(fin)}, failed {r.zcard(failed)}, queued "
                             f"{r.llen('rq:queue:' + RQ_QUEUE)})")
        check_alive(workers, "RQ worker")
        time.sleep(0.005)
    elapsed = time.monotonic() - t0
    cpu = cpu_ms(pids) - cpu0
    if r.zcard(failed):
        j = Job.fetch(r.zrange(failed, 0, 0)[0].decode(), connection=q.connection)
        raise BenchError(f"RQ {kind}: {r.zcard(failed)} jobs failed, e.g. {j.exc_info}")
    if kind == "pandas":
        v = jobs[0].return_value(refresh=True)
        if abs(float(v) - PANDAS_EXPECTED) > 1e-9:
            raise BenchError(f"RQ pandas job returned {v!r}")
    return {"n": n, "seconds": elapsed, "rate": n / elapsed, "enqueue_s": t_enq, "cpu_ms": cpu / n}


def rq_latency(q, r, n):
    from rq.job import JobStatus
    d2f, s2r = [], []
    for i in range(n):
        t0 = time.perf_counter()
        job = q.enqueue(RQ_FUNC["first_line"], i)
        deadline = time.monotonic() + 30
        while True:
            st = job.get_status(refresh=True)
            if st == JobStatus.FINISHED:
                res = job.return_value(refresh=True)
                break
            if st == JobStatus.FAILED or time.monotonic() > deadline:
                job.refresh()
                raise BenchError(f"RQ latency job {i}: status {st}: {job.exc_info}")
            time.sleep(0.001)
        t1 = time.perf_counter()
        first, dequeued = res
        d2f.append(first - dequeued)
        s2r.append((t1 - t0) * 1000)
    return d2f, s2r


def run_rq(rurl, r, tmp, others):
    from rq import Queue
    log(f"RQ: starting {WORKERS} workers")
    r.flushall()
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "bench") + (":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    workers = [start([PYTHON, str(ROOT / "bench" / "rq_worker.py"), rurl, RQ_QUEUE, f"bench-rq-{k}"],
                     env=env, log_path=os.path.join(tmp, f"worker-rq-{k}.log")) for k in range(WORKERS)]
    try:
        wait_for(lambda: check_alive(workers, "RQ worker") or rq_ready(r), 60, f"{WORKERS} idle RQ workers")
        time.sleep(0.5)
        rss = {"worker": statistics.mean(rss_kb(w.pid) for w in workers),
               "pss": statistics.mean(pss_kb(w.pid) for w in workers)}
        out = {"rss": rss}
        q = Queue(RQ_QUEUE, connection=redis.Redis.from_url(rurl))
        for kind in ("noop", "pandas", "first_line"):
            rq_throughput(q, r, workers, kind, 2 * WORKERS)
        n_noop, n_pandas = N["rq"]
        log(f"RQ: {REPEATS} x {n_noop} no-op jobs")
        out["noop"] = repeat(lambda: rq_throughput(q, r, workers, "noop", n_noop, others))
        log(f"RQ: {REPEATS} x {n_pandas} pandas jobs")
        out["pandas"] = repeat(lambda: rq_throughput(q, r, workers, "pandas", n_pandas, others))
        wait_for(lambda: rq_ready(r), 30, "RQ workers idle again")
        time.sleep(0.3)
        log(f"RQ: latency, {LATENCY_N} jobs one at a time")
        out["d2f"], out["s2r"] = rq_latency(q, r, LATENCY_N)
        check_alive(workers, "RQ worker")
        time.sleep(0.3)
        out["rss_after"] = {"worker": statistics.mean(rss_kb(w.pid) for w in workers)}
        return out
    finally:
        stop(workers)


# --- report ------------------------------------------------------------------------

def machine():
    mem_kb = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    import numpy
    import pandas
    import rq
    rv = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()
    rv = next((x[2:] for x in rv if x.startswith("v=")), "?")
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                                capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        commit = "?"
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(), "cpu": cpu, "mem": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(), "python": platform.python_version(),
        "rq": rq.__version__, "redis": rv, "numpy": numpy.__version__, "pandas": pandas.__version__,
        "commit": commit, "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "openblas": ", ".join(f"{k}={os.environ[k]}" for k in sorted(os.environ) if k.startswith("OPENBLAS")) or "unset",
    }


def floor_rate(res, nproc):
    """Jobs/s the fork alone allows: the cores over the CPU of one
    fork+exit+wait."""
    return nproc * 1e6 / res["floor"]["cpu_us"]


def targets(res, nproc):
    """Issue 21's targets: (text, met) each."""
    w, q = res["warm"], res["rq"]
    share = w["noop"]["rate"] / floor_rate(res, nproc)
    pr = w["pandas"]["rate"] / q["pandas"]["rate"]
    d50, s50 = pct(w["d2f"], 50), pct(w["s2r"], 50)
    pss, rq_pss = w["rss"]["worker_pss"], q["rss"]["pss"]
    return [
        (f"warm no-op jobs/s >= 0.8 x the fork floor's rate: {w['noop']['rate']:.1f} of "
         f"{floor_rate(res, nproc):.1f} = {share:.2f} x", share >= 0.8),
        (f"warm pandas jobs/s >= 1.5 x RQ: {pr:.2f} x", pr >= 1.5),
        (f"warm dequeue -> first line p50 <= 1.0 ms: {d50:.3f} ms", d50 <= 1.0),
        (f"warm submit -> result p50 <= 2.5 ms: {s50:.2f} ms", s50 <= 2.5),
        (f"warm worker idle PSS (supervisor + executor + spare) <= RQ worker's: "
         f"{pss / 1024:.1f} MiB vs {rq_pss / 1024:.1f} MiB", pss <= rq_pss),
    ]


def build_rows(res, nproc):
    w, c, q = res["warm"], res["cold"], res["rq"]
    rows = []  # (figure, warm, cold, rq, ratio, target, met, fmt)

    def row(name, wv, cv, qv, fmt, target="", met=None, higher_better=True):
        ratio = (wv / qv) if (wv is not None and qv) else None
        rows.append((name, wv, cv, qv, ratio, target, met, fmt, higher_better))

    fl = floor_rate(res, nproc)
    row(f"no-op jobs/s (warm {w['noop']['n']}, cold {c['noop']['n']}, RQ {q['noop']['n']} jobs)",
        w["noop"]["rate"], c["noop"]["rate"], q["noop"]["rate"], "{:.1f}")
    row(f"fork floor: jobs/s the fork alone allows ({nproc} cores / CPU per fork+exit+wait)",
        fl, None, None, "{:.1f}")
    share = w["noop"]["rate"] / fl
    row("warm no-op jobs/s as a share of the fork floor", share, None, None, "{:.2f}",
        "warm >= 0.8", share >= 0.8)
    pr = w["pandas"]["rate"] / q["pandas"]["rate"]
    row(f"pandas jobs/s (warm {w['pandas']['n']}, cold {c['pandas']['n']}, RQ {q['pandas']['n']} jobs)",
        w["pandas"]["rate"], c["pandas"]["rate"], q["pandas"]["rate"], "{:.1f}",
        "warm >= 1.5x RQ", pr >= 1.5)
    row("CPU ms per no-op job (workers + api + redis)", w["noop"]["cpu_ms"], c["noop"]["cpu_ms"],
        q["noop"]["cpu_ms"], "{:.2f}", higher_better=False)
    row("CPU ms per pandas job (workers + api + redis)", w["pandas"]["cpu_ms"], c["pandas"]["cpu_ms"],
        q["pandas"]["cpu_ms"], "{:.2f}", higher_better=False)
    d50 = pct(w["d2f"], 50)
    row("dequeue -> first line p50 ms", d50, pct(c["d2f"], 50), pct(q["d2f"], 50), "{:.3f}",
        "warm <= 1.0 ms", d50 <= 1.0, False)
    row("dequeue -> first line p99 ms", pct(w["d2f"], 99), pct(c["d2f"], 99), pct(q["d2f"], 99),
        "{:.3f}", higher_better=False)
    s50 = pct(w["s2r"], 50)
    row("submit -> result p50 ms (client)", s50, pct(c["s2r"], 50), pct(q["s2r"], 50),
        "{:.2f}", "warm <= 2.5 ms", s50 <= 2.5, False)
    row("submit -> result p99 ms (client)", pct(w["s2r"], 99), pct(c["s2r"], 99), pct(q["s2r"], 99),
        "{:.2f}", higher_better=False)
    mib = lambda kb: kb / 1024 if kb is not None else None  # noqa: E731
    row("idle RSS MiB, stratq supervisor+executor / RQ worker",
        mib(w["rss"]["supervisor"] + w["rss"]["executor"]),
        mib(c["rss"]["supervisor"] + c["rss"]["executor"]), mib(q["rss"]["worker"]), "{:.1f}",
        higher_better=False)
    row("  of which stratq supervisor", mib(w["rss"]["supervisor"]), mib(c["rss"]["supervisor"]), None,
        "{:.1f}", higher_better=False)
    row("  of which stratq executor", mib(w["rss"]["executor"]), mib(c["rss"]["executor"]), None,
        "{:.1f}", higher_better=False)
    row("idle RSS MiB, warm spare child (separate)", mib(w["rss"]["spare"]), None, None, "{:.1f}",
        higher_better=False)
    row("idle PSS MiB, stratq supervisor+executor / RQ worker", mib(w["rss"]["pss"]),
        mib(c["rss"]["pss"]), mib(q["rss"]["pss"]), "{:.1f}", higher_better=False)
    row("idle PSS MiB, warm spare child (separate)", mib(w["rss"]["spare_pss"]), None, None, "{:.1f}",
        higher_better=False)
    wp = w["rss"]["worker_pss"]
    row("idle PSS MiB, whole worker: supervisor+executor+spare / RQ worker", mib(wp),
        mib(c["rss"]["worker_pss"]), mib(q["rss"]["pss"]), "{:.1f}", "warm <= RQ",
        wp <= q["rss"]["pss"], False)
    row("RSS MiB after the run, supervisor+executor / RQ worker",
        mib(w["rss_after"]["supervisor"] + w["rss_after"]["executor"]),
        mib(c["rss_after"]["supervisor"] + c["rss_after"]["executor"]), mib(q["rss_after"]["worker"]),
        "{:.1f}", higher_better=False)
    return rows


def fmt_cell(v, fmt):
    return "-" if v is None else fmt.format(v)


def text_table(rows):
    head = ("figure", "stratq warm", "stratq cold", "RQ 1.13", "warm/RQ", "target")
    lines = [f"{head[0]:<58} {head[1]:>11} {head[2]:>11} {head[3]:>9} {head[4]:>8}  {head[5]}"]
    for name, wv, cv, qv, ratio, target, met, fmt, _ in rows:
        t = f"{target}: {'met' if met else 'NOT met'}" if target else ""
        lines.append(f"{name:<58} {fmt_cell(wv, fmt):>11} {fmt_cell(cv, fmt):>11} {fmt_cell(qv, fmt):>9} "
                     f"{fmt_cell(ratio, '{:.2f}x'):>8}  {t}")
    return "\n".join(lines)


def md_table(rows):
    lines = ["| figure | stratq warm | stratq cold | RQ 1.13 | warm / RQ | target |",
             "|---|---:|---:|---:|---:|---|"]
    for name, wv, cv, qv, ratio, target, met, fmt, _ in rows:
        t = f"{target}: **{'met' if met else 'NOT met'}**" if target else ""
        lines.append(f"| {name.strip()} | {fmt_cell(wv, fmt)} | {fmt_cell(cv, fmt)} | {fmt_cell(qv, fmt)} "
                     f"| {fmt_cell(ratio, '{:.2f}x')} | {t} |")
    return "\n".join(lines)


CONFIG_NOTES = """\
- Fork floor: `stratq-executor --fork-floor {floor_forks}` with the warm workers' settings (the
  same preloads and sandbox; its spare discarded), {floor_rounds} runs, the median shown: the
  executor's own interpreter, as it is when jobs are forked from it, forked again and again
  with `fork()`, the child calling `_exit(0)` at once, the parent waiting for it. CPU is the
  parent's (fork, wait) and the children's (exit) from `getrusage`; the floor rate is the
  cores over that CPU: what the machine could do if a job cost nothing but its fork.
- Every system: 2 workers, the same redis-server ({redis}, loopback, `--save '' --appendonly no`),
  FLUSHALL between systems; the benchmark client runs on the same 2 cores.
- **stratq warm**: `stratq worker` x 2, `STRATQ_MODE=warm`, `STRATQ_PRELOAD` default
  (`numpy,pandas`), `STRATQ_LOG_LEVEL=warn`, all else default: an embedded CPython with numpy and
  pandas imported once, a fork per job, a spare child pre-forked. Jobs go through one `stratq api`.
- **stratq cold**: the same with `STRATQ_MODE=cold`: fork+exec `/usr/bin/python3 -I -B` with the
  harness per job.
- **RQ {rq}**: `bench/rq_worker.py` x 2: imports numpy, pandas and the job module
  (`bench/rq_jobs.py`), then runs RQ's default `Worker` (`logging_level=WARNING`), which forks a
  work horse per job (RQ's default; `SimpleWorker` would run jobs in the worker process itself,
  without isolation). Default pickle serializer, default result TTL. The only addition is a
  timestamp in worker memory right after a job is dequeued (no Redis command), for dequeue -> first line.
- Job functions: no-op (returns its parameter `i`); pandas
  (`pd.Series(range(1000), dtype='float64').rolling(20).mean().iloc[-1]`); latency job
  (first line `t = time.time() * 1000`, returned). stratq runs them as strategy code
  (`def run(ctx)`, `ctx.params['i']`), RQ as functions with the same statements.
- Throughput: the workers are started, registered and idle first; warm-up jobs (4 of each kind)
  are not counted; then all N jobs are enqueued at once (stratq: `POST /v1/jobs/batch`, at most
  1,000 per request; RQ: `Queue.enqueue_many`, one pipeline) and timed from the enqueue until the
  completion counts (stratq: terminal events on `stratq:{{python_execution_queue}}:events`, from a
  subscription of the benchmark's own; RQ: finished + failed registries,
  polled every 5 ms) reach N. Every job is checked to have succeeded. Each phase runs
  {repeats} times; the table shows the median run.
- CPU ms per job: user + system CPU time over a throughput run (from `/proc/<pid>/stat`,
  including reaped children: the job processes) of the workers, `stratq api` (stratq only) and
  redis-server, divided by N. The benchmark client is not counted. With 2 cores, 2000 / this
  figure is the ceiling on jobs/s if nothing else ran.
- Latency, idle queue, one job at a time (warm and RQ: {lat} jobs; cold: {cold_lat}):
  submit -> result is what the client sees: stratq `POST /v1/jobs?wait=30` on a keep-alive HTTP
  connection (the answer carries the result); RQ `enqueue`, then `get_status()` every 1 ms and
  `return_value()` (RQ 1.13 has no blocking wait for a result, so RQ pays up to ~1 ms of polling).
  dequeue -> first line: stratq: the job's timestamp (`time.time()`, µs) minus `started_us` from
  the job hash (the worker's clock right after `BLMOVE`, to the µs); RQ: minus the time noted in
  the worker right after `BLPOP` and the job fetch.
  In RQ that includes the worker's job bookkeeping and the fork of the work horse.
- Idle RSS: `VmRSS` from `/proc/<pid>/status`, mean of the 2 workers, measured once they are
  registered and idle, before any job. PSS (`/proc/<pid>/smaps_rollup`) splits pages shared
  between processes (the spare and its executor; the two workers' copies of the same libraries)
  among them. stratq: supervisor (`stratq worker`) + executor
  (`stratq-executor`); the warm executor's spare child is reported on its own row (it shares
  most pages with the executor copy-on-write, so RSS counts them twice). RQ: the worker process
  (its work horse exists only while a job runs). "After the run": the same after all phases.
"""

BREAKDOWN_NOTES = """\
Measured in the same run, after the warm phases: 1 warm worker (the same settings) on an idle
queue, the latency job one at a time, {n} jobs back to back (each submitted as soon as the
answer before it is in, as for the latency figures above; but there 2 workers take the jobs in
turn, here every job goes to the same executor) and {n} jobs {pause:.0f} ms apart (the executor
idle and its spare waiting when each job comes); first untraced, then as many again under
`perf trace record -p` of the benchmark client, `stratq api`, the worker and its executor (the
job children followed as the executor forks them). Each stage runs from one system call to the
next along the job's path (`bench/latparts.py` lists them), each taken when the call returned:
the work of one process and the wake-up of the next, so that a job's stages add up to its whole
path from the client's send to its receive. Means add up across stages; medians need not (with
a wide spread the sum of the medians falls short of the median of the sums). Unaccounted is what
no traced call sees: in submit -> result the client's own time before its send and after its
receive (http.client, JSON); in dequeue -> first line the job child's time from its read of the
request to the strategy's first line (the harness parsing the request, compiling the strategy);
both are also given job by job. The indented "not back yet" and "not waiting yet" rows are the
part of a stage before the receiving side was ready to read at all: the executor reads the next
RUN frame only once it has reaped the job child before and cleaned up (after a success told
early it forks the next spare first, beside the child's exit; otherwise after the clean-up:
`loop_handover` and `executor_serve` in src/worker/executor.c); the spare reads its request only after its sandbox
and the harness's rehearsal job. The second table follows the executor and the spare between
two jobs. The untraced row shows what the trace itself adds; back to back it also moves the
pace (a slower client gives the executor more time), so the paced column is the fairer measure
of that.
"""


def throughput_details(res):
    lines = ["throughput runs (jobs/s of each run; the table shows the median run):"]
    for sysname, key in (("stratq warm", "warm"), ("stratq cold", "cold"), ("RQ", "rq")):
        for kind in ("noop", "pandas"):
            x = res[key][kind]
            lines.append(f"  {sysname:<12} {kind:<7} {x['n']:>4} jobs: "
                         + ", ".join(f"{v:.1f}" for v in x["rates"])
                         + f"  (median run: {x['seconds']:.2f} s, of which enqueue {x['enqueue_s'] * 1000:.0f} ms)")
    w, c = res["warm"], res["cold"]
    lines.append(f"stratq warm / stratq cold: no-op {w['noop']['rate'] / c['noop']['rate']:.1f}x, "
                 f"pandas {w['pandas']['rate'] / c['pandas']['rate']:.1f}x jobs/s")
    return "\n".join(lines)


def sandbox_effect(res):
    """The sandbox's optional layers against the always-on ones, warm mode."""
    a, b = res["warm"], res["warm_always_on"]
    lines = ["sandbox effect, warm mode (every layer this host allows vs always-on layers only):"]
    for kind in ("noop", "pandas"):
        lines.append(f"  {kind:<7} jobs/s: {a[kind]['rate']:8.1f} vs {b[kind]['rate']:8.1f}"
                     f"  ratio {a[kind]['rate'] / b[kind]['rate']:.2f}")
    for p in (50, 99):
        lines.append(f"  dequeue -> first line p{p}: {pct(a['d2f'], p):.2f} ms vs {pct(b['d2f'], p):.2f} ms")
        lines.append(f"  submit -> result p{p}:     {pct(a['s2r'], p):.2f} ms vs {pct(b['s2r'], p):.2f} ms")
    return "\n".join(lines)


def floor_details(res, m):
    f = res["floor"]
    return "\n".join([
        f"fork floor: {FLOOR_ROUNDS} runs of {f['forks']} forks of the warm executor's interpreter "
        f"(preload {f['preload'] or '-'}), CPU per fork+exit+wait "
        + ", ".join(f"{x:.0f}" for x in f["runs"]) + " µs; median run:",
        f"  CPU {f['cpu_us']:.0f} µs (the parent's fork and wait {f['parent_cpu_us']:.0f}, the child's "
        f"exit {f['child_cpu_us']:.0f}), wall {f['wall_us']:.0f} µs (p50 {f['wall_p50_us']} µs)",
        f"  executor at the fork: RSS {f['rss_kb'] / 1024:.1f} MiB, of which anonymous "
        f"{f['anon_kb'] / 1024:.1f} MiB; {f['maps']} mappings",
        f"  floor rate {floor_rate(res, m['nproc']):.1f} jobs/s ({m['nproc']} cores); stratq warm "
        f"no-op {res['warm']['noop']['rate']:.1f} jobs/s = "
        f"{res['warm']['noop']['rate'] / floor_rate(res, m['nproc']):.2f} x the floor"])


def profile_table(res):
    """The CPU breakdown per job, as markdown (None without a profile)."""
    p = res["warm"].get("profile")
    if not p:
        return None
    total = sum(p.values())
    lines = ["| part | CPU µs per no-op job | share |", "|---|---:|---:|"]
    for k, v in p.items():
        lines.append(f"| {k} | {v:.0f} | {v / total:.0%} |")
    lines.append(f"| **total** | **{total:.0f}** | |")
    return "\n".join(lines)


def report(res, m, elapsed):
    rows = build_rows(res, m["nproc"])
    details = (floor_details(res, m) + "\n\n" + throughput_details(res) + "\n\n"
               + sandbox_effect(res))
    targets_ = [f"{t} -> {'met' if ok else 'NOT met'}" for t, ok in targets(res, m["nproc"])]
    prof = profile_table(res)
    lat = breakdown_details(res["breakdown"])
    print()
    print(f"stratq bench-exec: {WORKERS} workers per system, {m['nproc']} cores, {m['mem']} RAM, "
          f"kernel {m['kernel']}, Python {m['python']}, RQ {m['rq']}, redis {m['redis']}")
    print("RQ: default Worker, which forks a work horse per job; numpy, pandas and the job module "
          "imported in the worker before it starts")
    print()
    print(text_table(rows))
    print()
    print(details)
    print()
    if prof:
        print("CPU per warm no-op job, from a whole-system profile (perf record -a -g):")
        print(prof)
        print()
    print("Where one job's latency goes, from system calls (perf trace record; bench/latparts.py):")
    print(lat)
    print()
    for t in targets_:
        print("target " + t)
    why = breakdown_summary(res["breakdown"])
    print(why)
    print(f"\n(total run {elapsed:.0f} s; table also in {DOC.relative_to(ROOT)})")

    doc = f"""# stratq executor benchmark (`make bench-exec`)

Written by `make bench-exec` (`bench/exec.py`); overwritten on each run.
Issues 5 and 21: the warm executor against stratq cold, RQ and the fork floor (what forking
the warm executor's interpreter alone costs), side by side in one run.

Run {m['date']}, stratq {m['commit']}, total {elapsed:.0f} s.

## Results

{md_table(rows)}

Targets (issue 21, this 2-core machine):

{chr(10).join('- ' + t for t in targets_)}

{why}

## Where a warm no-op job's CPU goes

{prof or "No profile in this run (perf missing, or not allowed to profile the whole system)."}

From `perf record -a -g` over one more warm no-op phase (not one of the measured runs),
each sample put in one part by its process and call stack (`bench/cpuparts.py`): the executor's
`kernel_clone` is the fork; a job process's `do_exit` its exit; `exc_page_fault` the
copy-on-write and file page faults of the executor and the job; Landlock, seccomp, mount,
cgroup, credential, rlimit and namespace system calls the sandbox set-up; the rest of a job
process its Python (CPython's at-fork hooks, the harness, the strategy, the result). Idle time
is left out; the total is the CPU of the whole machine per job, the benchmark client included.

```
{details}
```

Ratios are stratq warm / RQ: above 1 is better for jobs/s, below 1 is better for
milliseconds and MiB.

## Where one job's latency goes

{lat}

{BREAKDOWN_NOTES.format(n=BREAKDOWN_N, pause=BREAKDOWN_PAUSE_S * 1000)}
## Machine

| | |
|---|---|
| CPUs (nproc) | {m['nproc']} ({m['cpu']}) |
| memory | {m['mem']} |
| kernel | {m['kernel']} |
| Python | {m['python']} (`/usr/bin/python3`), numpy {m['numpy']}, pandas {m['pandas']} |
| RQ | {m['rq']} (Debian python3-rq) |
| redis-server | {m['redis']} |
| OpenBLAS environment | {m['openblas']} (left as set on the machine) |

## How each system was configured and measured

{CONFIG_NOTES.format(redis=m['redis'], rq=m['rq'], lat=LATENCY_N, cold_lat=COLD_LATENCY_N,
                      repeats=REPEATS, floor_forks=FLOOR_FORKS, floor_rounds=FLOOR_ROUNDS)}"""
    DOC.write_text(doc)


def start_stack(tmp):
    """The run's own redis-server and `stratq api`, up: (redis_p, api_p,
    redis client, Api, Redis URL)."""
    rport, aport = free_port(), free_port()
    rurl = f"redis://127.0.0.1:{rport}"
    redis_p = start_redis(rport, tmp)
    r = redis.Redis(host="127.0.0.1", port=rport)

    def ping():
        try:
            return r.ping()
        except redis.ConnectionError:
            return False

    wait_for(ping, 10, "redis-server")
    api_p = start([str(BIN), "api", "--port", str(aport), "--redis-url", rurl],
                  env=stratq_env("warm"), log_path=os.path.join(tmp, "api.log"))
    api = Api(aport)

    def healthy():
        check_alive([api_p], "stratq api")
        try:
            return api.request("GET", "/healthz", timeout=2)[0] == 200
        except OSError:
            return False

    wait_for(healthy, 15, "stratq api /healthz", interval=0.05)
    return redis_p, api_p, r, api, rurl


def main(only_breakdown=False):
    """The whole benchmark; only_breakdown: only the latency breakdown
    (`python3 bench/latparts.py`), printed, docs/ left as they are."""
    if not BIN.exists():
        raise SystemExit(f"bench-exec: {BIN} is missing; run make")
    t_start = time.monotonic()
    arm_deadline(DEADLINE_S)
    tmp = tempfile.mkdtemp(prefix="stratq-bench-exec.")
    try:
        redis_p, api_p, r, api, rurl = start_stack(tmp)
        if only_breakdown:
            b = latency_breakdown(rurl, r, api, api_p, tmp)
            print(breakdown_details(b) + "\n\n" + breakdown_summary(b))
            return 0
        m = machine()
        res = {}
        res["floor"] = measure_floor()
        res["warm"] = run_stratq("warm", rurl, r, api, tmp, [api_p, redis_p], profile=PROFILE)
        res["breakdown"] = latency_breakdown(rurl, r, api, api_p, tmp)
        res["cold"] = run_stratq("cold", rurl, r, api, tmp, [api_p, redis_p])
        res["warm_always_on"] = run_stratq("warm", rurl, r, api, tmp, [api_p, redis_p],
                                           ALWAYS_ON, "warm, always-on layers only")
        res["rq"] = run_rq(rurl, r, tmp, [redis_p])
        check_alive([api_p, redis_p], "stratq api / redis-server")
        signal.alarm(0)
        report(res, m, time.monotonic() - t_start)
        return 0
    except BenchError as e:
        log_failure(e, tmp)
        return 1
    finally:
        signal.alarm(0)
        stop(list(reversed(STARTED)))
        subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    sys.exit(main())
