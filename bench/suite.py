"""`make bench`: stratq (warm and cold) against RQ 1.13 and Celery 5.2, one run.

One redis-server (loopback, free port, no persistence) serves every system,
FLUSHALL between runs; nothing else runs in parallel. For each system and each
worker count in BENCH_WORKERS (default 1, 2, 4 and every count up to the core
count) it starts the workers, waits until they are idle, reads their idle RSS,
runs a few warm-up jobs, then:

  throughput  a batch of no-op jobs and a batch of small pandas jobs (rolling
              mean over 1,000 rows), all enqueued at once, timed from the
              enqueue until the completion counter reaches N; every job is
              checked to have succeeded; jobs/s;
  commands    Redis commands per job: `INFO stats` total_commands_processed
              over the batch (the systems' own commands: the workers, the
              stratq API, the client's enqueue), minus the benchmark's own
              polling commands (counted), divided by N;
  busy RSS    the peak, during the pandas batch, of the summed RSS of every
              process of the workers (supervisors, executors, work horses,
              pool children, job processes), divided by the worker count;
  latency     (2 workers only) one job at a time on an idle queue: submit ->
              result on the client, p50/p99.

Before all of that, scripts/bench-api.sh measures the API's submit rate with
wrk against redis-benchmark's rate for the same enqueue EVALSHA.

Prints the tables, writes docs/benchmarks.md and docs/img/bench-*.png. The
whole run is bounded by BENCH_DEADLINE_S (default 840 s, SIGALRM); every wait
has its own deadline. Stops only what it started, by pid. Exit 1 if a job
fails or a phase does not finish.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import exec as ex  # noqa: E402  (bench/exec.py: processes, stratq API client, RQ helpers)
from exec import BenchError, pct, rss_kb, pss_kb, descendants, children  # noqa: E402

import redis  # noqa: E402

ROOT = ex.ROOT
BIN = ex.BIN
PYTHON = ex.PYTHON
DOC = ROOT / "docs" / "benchmarks.md"
IMG = ROOT / "docs" / "img"
NPROC = os.cpu_count() or 1


def env_int(name, default):
    return int(os.environ.get(name, str(default)))


WORKER_COUNTS = sorted(set(int(x) for x in os.environ.get("BENCH_WORKERS", "").split(",") if x.strip())
                       or ({1, 2, 4} | set(range(1, NPROC + 1))))
HEADLINE = 2 if 2 in WORKER_COUNTS else WORKER_COUNTS[0]  # latency and the main table's memory rows
SYSTEMS = ("warm", "cold", "rq", "celery", "celery4")
LABEL = {"warm": "stratq warm", "cold": "stratq cold", "rq": "RQ 1.13", "celery": "Celery 5.2",
         "celery4": "Celery prefetch 4"}
PEERS = ("rq", "celery", "celery4")
# Celery as the issue asks (prefetch 1, -O fair: one job per pool process, like stratq and RQ),
# and Celery with its default prefetch multiplier (4), which its throughput depends on.
CELERY_OPTS = {"celery": os.environ.get("BENCH_CELERY_OPTS", "--prefetch-multiplier=1 -O fair").split(),
               "celery4": ["--prefetch-multiplier=4"]}
# Jobs per throughput batch, (no-op, pandas), the same at every worker count.
# Cold pays a fresh interpreter per job (and ~0.5 s to import pandas), so fewer.
N = {
    "warm": (env_int("BENCH_WARM_NOOP", 400), env_int("BENCH_WARM_PANDAS", 400)),
    "cold": (env_int("BENCH_COLD_NOOP", 60), env_int("BENCH_COLD_PANDAS", 16)),
    "rq": (env_int("BENCH_RQ_NOOP", 200), env_int("BENCH_RQ_PANDAS", 200)),
    "celery": (env_int("BENCH_CELERY_NOOP", 300), env_int("BENCH_CELERY_PANDAS", 300)),
    "celery4": (env_int("BENCH_CELERY_NOOP", 400), env_int("BENCH_CELERY_PANDAS", 400)),
}
LATENCY_N = {"warm": env_int("BENCH_LATENCY_N", 100), "rq": env_int("BENCH_LATENCY_N", 100),
             "celery": env_int("BENCH_LATENCY_N", 100),
             "celery4": env_int("BENCH_LATENCY_N", 100), "cold": env_int("BENCH_COLD_LATENCY_N", 30)}
DEADLINE_S = env_int("BENCH_DEADLINE_S", 840)
PHASE_TIMEOUT_S = 120
# A throughput batch still running after BATCH_CAP_S is cut short: its rate is the jobs finished so
# far over the time so far (marked "partial"), and the system restarts from an empty Redis.
# Only Celery with prefetch 1 gets there (its Redis consumer stalls; see CONFIG_NOTES).
BATCH_CAP_S = env_int("BENCH_BATCH_CAP_S", 15)
LATENCY_CAP_S = env_int("BENCH_LATENCY_CAP_S", 15)
RQ_QUEUE = ex.RQ_QUEUE
PANDAS_EXPECTED = ex.PANDAS_EXPECTED


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def tree(procs):
    pids = []
    for p in procs:
        pids.append(p.pid)
        pids.extend(descendants(p.pid))
    return pids


def tree_rss_kb(procs):
    return sum(rss_kb(p) for p in tree(procs))


def tree_pss_kb(procs):
    return sum(pss_kb(p) for p in tree(procs))


def commands(r):
    return int(r.info("stats")["total_commands_processed"])


def cmdstats(r):
    return {k[len("cmdstat_"):] if k.startswith("cmdstat_") else k: int(v["calls"])
            for k, v in r.info("commandstats").items()}


def measure(sysname, r, workers, n, submit, done, poll_cmds, verify, poll_name, cap=None):
    """One throughput batch: (jobs/s, commands/job, peak tree RSS)."""
    base = done()
    c0 = commands(r)
    cs0 = cmdstats(r)
    polls = 0
    t0 = time.monotonic()
    handles = submit(n)
    t_enq = time.monotonic() - t0
    deadline = time.monotonic() + PHASE_TIMEOUT_S
    peak, last_sample, = tree_rss_kb(workers), 0.0
    while True:
        d = done()
        polls += 1
        if d >= base + n:
            break
        now = time.monotonic()
        if cap and now - t0 > cap and d > base:
            break
        if now > deadline:
            raise BenchError(f"{LABEL[sysname]}: {d - base} of {n} jobs finished after {PHASE_TIMEOUT_S} s")
        if now - last_sample > 0.03:
            peak = max(peak, tree_rss_kb(workers))
            last_sample = now
            ex.check_alive(workers, f"{LABEL[sysname]} worker")
        time.sleep(0.005)
    elapsed = time.monotonic() - t0
    c1 = commands(r)
    cs1 = cmdstats(r)
    # c1 counts the two INFOs before the batch; the polls are the benchmark's, not the system's.
    cmds = c1 - c0 - 2 - polls * poll_cmds
    by_cmd = {k: cs1.get(k, 0) - cs0.get(k, 0) for k in cs1}
    by_cmd["info"] = by_cmd.get("info", 0) - 3
    by_cmd[poll_name] = by_cmd.get(poll_name, 0) - polls * poll_cmds
    finished = min(n, d - base)
    by_cmd = {k: v / finished for k, v in sorted(by_cmd.items(), key=lambda kv: -kv[1]) if v > 0}
    verify(handles)
    return {"n": n, "finished": finished, "partial": finished < n, "seconds": elapsed,
            "rate": finished / elapsed, "enqueue_s": t_enq,
            "cmds_per_job": cmds / finished, "peak_rss_kb": peak, "by_cmd": by_cmd}


# --- stratq ------------------------------------------------------------------------

def stratq_verify(r, kind):
    def verify(ids):
        st = ex.stratq_statuses(r, ids)
        bad = [(i, s) for i, s in zip(ids, st) if s[0] != b"succeeded"]
        if bad:
            raise BenchError(f"{len(bad)} of {len(ids)} stratq {kind} jobs did not succeed, e.g. {bad[0]}")
        if kind == "pandas" and abs(float(st[0][1]) - PANDAS_EXPECTED) > 1e-9:
            raise BenchError(f"stratq pandas job returned {st[0][1]!r}")
    return verify


def run_stratq(mode, n, rurl, r, api, tmp):
    ex.WORKERS = n
    r.flushall()
    env = ex.stratq_env(mode)
    workers = [ex.start([str(BIN), "worker", "--redis-url", rurl], env=env,
                        log_path=os.path.join(tmp, f"worker-{mode}-{n}-{k}.log")) for k in range(n)]
    try:
        ex.wait_for(lambda: ex.check_alive(workers, "stratq worker") or ex.stratq_ready(r, workers, mode),
                    60, f"{n} idle stratq {mode} workers")
        time.sleep(0.5)
        out = {"idle_rss_kb": tree_rss_kb(workers) / n, "idle_pss_kb": tree_pss_kb(workers) / n}
        for kind in ("noop", "pandas", "first_line"):
            ex.stratq_throughput(api, r, workers, kind, 2 * n)  # warm-up, not counted
        for kind, cnt in zip(("noop", "pandas"), N[mode]):
            log(f"{LABEL[mode]} x{n}: {cnt} {kind} jobs")
            out[kind] = measure(mode, r, workers, cnt,
                                lambda c, kind=kind: ex.stratq_submit_batch(api, kind, c),
                                lambda: ex.stratq_completed(r), 0, stratq_verify(r, kind), "hgetall")
        if n == HEADLINE:
            ex.wait_for(lambda: ex.stratq_ready(r, workers, mode), 30, "stratq workers idle again")
            time.sleep(0.3)
            log(f"{LABEL[mode]} x{n}: latency, {LATENCY_N[mode]} jobs one at a time")
            _, out["s2r"] = ex.stratq_latency(api, r, LATENCY_N[mode])
        ex.check_alive(workers, "stratq worker")
        return out
    finally:
        ex.stop(workers)


# --- RQ ----------------------------------------------------------------------------

def run_rq(n, rurl, r, tmp):
    from rq import Queue
    from rq.job import Job
    ex.WORKERS = n
    r.flushall()
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "bench") + (":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    workers = [ex.start([PYTHON, str(ROOT / "bench" / "rq_worker.py"), rurl, RQ_QUEUE, f"bench-rq-{k}"],
                        env=env, log_path=os.path.join(tmp, f"worker-rq-{n}-{k}.log")) for k in range(n)]
    fin, failed = f"rq:finished:{RQ_QUEUE}", f"rq:failed:{RQ_QUEUE}"
    try:
        ex.wait_for(lambda: ex.check_alive(workers, "RQ worker") or ex.rq_ready(r), 60, f"{n} idle RQ workers")
        time.sleep(0.5)
        out = {"idle_rss_kb": tree_rss_kb(workers) / n, "idle_pss_kb": tree_pss_kb(workers) / n}
        q = Queue(RQ_QUEUE, connection=redis.Redis.from_url(rurl))
        for kind in ("noop", "pandas", "first_line"):
            ex.rq_throughput(q, r, workers, kind, 2 * n)  # warm-up

        def done():
            p = r.pipeline(transaction=False)
            p.zcard(fin)
            p.zcard(failed)
            a, b = p.execute()
            return a + b

        def verify_for(kind):
            def verify(jobs):
                if r.zcard(failed):
                    j = Job.fetch(r.zrange(failed, 0, 0)[0].decode(), connection=q.connection)
                    raise BenchError(f"RQ {kind}: {r.zcard(failed)} jobs failed, e.g. {j.exc_info}")
                if kind == "pandas":
                    v = jobs[0].return_value(refresh=True)
                    if abs(float(v) - PANDAS_EXPECTED) > 1e-9:
                        raise BenchError(f"RQ pandas job returned {v!r}")
            return verify

        for kind, cnt in zip(("noop", "pandas"), N["rq"]):
            log(f"RQ x{n}: {cnt} {kind} jobs")
            out[kind] = measure("rq", r, workers, cnt,
                                lambda c, kind=kind: q.enqueue_many(
                                    [Queue.prepare_data(ex.RQ_FUNC[kind], args=(i,)) for i in range(c)]),
                                done, 2, verify_for(kind), "zcard")
        if n == HEADLINE:
            ex.wait_for(lambda: ex.rq_ready(r), 30, "RQ workers idle again")
            time.sleep(0.3)
            log(f"RQ x{n}: latency, {LATENCY_N['rq']} jobs one at a time")
            _, out["s2r"] = ex.rq_latency(q, r, LATENCY_N["rq"])
        ex.check_alive(workers, "RQ worker")
        return out
    finally:
        ex.stop(workers)


# --- Celery ------------------------------------------------------------------------

def celery_env(rport):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "bench") + (":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["BENCH_CELERY_BROKER"] = f"redis://127.0.0.1:{rport}/0"
    env["BENCH_CELERY_BACKEND"] = f"redis://127.0.0.1:{rport}/1"
    return env


CELERY_ARGV = ["-m", "celery", "-A", "celery_jobs", "worker", "--pool=prefork", "--loglevel=WARNING"]


def run_celery(sysname, n, rport, r, tmp, app_mod):
    ex.WORKERS = n
    rb = redis.Redis(host="127.0.0.1", port=rport, db=1)  # the result backend's db
    argv = [PYTHON] + CELERY_ARGV + CELERY_OPTS[sysname] + [f"--concurrency={n}", "--hostname", f"{sysname}-{n}@%h"]
    tasks = {"noop": app_mod.noop, "pandas": app_mod.pandas_job, "first_line": app_mod.first_line}
    box = {"workers": []}
    starts = [0]

    def submit(kind, c):
        t = tasks[kind]
        return [t.delay(i) for i in range(c)]

    def launch():
        """A fresh Redis and a fresh Celery worker, ready and warmed up."""
        if box["workers"]:
            ex.stop(box["workers"])
        r.flushall()
        starts[0] += 1
        master = ex.start(argv, env=celery_env(rport),
                          log_path=os.path.join(tmp, f"worker-{sysname}-{n}-{starts[0]}.log"))
        box["workers"] = [master]
        ex.wait_for(lambda: ex.check_alive([master], "Celery worker") or len(children(master.pid)) >= n,
                    60, f"Celery pool of {n}", interval=0.05)
        # Ready when a first task round-trips (the worker has connected and consumes).
        app_mod.noop.delay(-1).get(timeout=60)
        time.sleep(0.5)
        return master

    def verify_for(kind):
        def verify(results):
            raw = rb.mget([f"celery-task-meta-{x.id}" for x in results])
            got = [m for m in raw if m is not None]
            bad = [m for m in got if json.loads(m)["status"] != "SUCCESS"]
            if bad or not got:
                raise BenchError(f"Celery {kind}: {len(bad)} of {len(results)} tasks did not succeed, "
                                 f"e.g. {bad[:1]!r}")
            if kind == "pandas" and abs(float(json.loads(got[0])["result"]) - PANDAS_EXPECTED) > 1e-9:
                raise BenchError(f"Celery pandas task returned {got[0]!r}")
            for x in results:  # stop listening for results we read from Redis directly
                app_mod.app.backend.result_consumer.cancel_for(x.id)
        return verify

    try:
        master = launch()
        out = {"idle_rss_kb": tree_rss_kb([master]) / n, "idle_pss_kb": tree_pss_kb([master]) / n,
               "pool_children": len(children(master.pid))}
        t_w = time.monotonic()
        for kind in ("noop", "pandas", "first_line"):
            for x in submit(kind, 2 * n):
                x.get(timeout=60)
        out["warmup_s"] = time.monotonic() - t_w
        for kind, cnt in zip(("noop", "pandas"), N[sysname]):
            log(f"{LABEL[sysname]} x{n}: {cnt} {kind} jobs")
            out[kind] = measure(sysname, r, box["workers"], cnt, lambda c, kind=kind: submit(kind, c),
                                lambda: rb.dbsize(), 1, verify_for(kind), "dbsize", cap=BATCH_CAP_S)
            if out[kind]["partial"]:
                log(f"{LABEL[sysname]} x{n}: cut short after {out[kind]['seconds']:.1f} s, "
                    f"{out[kind]['finished']} of {cnt} done; restarting the worker")
                launch()
        if n == HEADLINE:
            time.sleep(0.3)
            log(f"{LABEL[sysname]} x{n}: latency, up to {LATENCY_N[sysname]} jobs one at a time "
                f"(at most {LATENCY_CAP_S} s)")
            s2r = []
            t_l = time.monotonic()
            for i in range(LATENCY_N[sysname]):
                if time.monotonic() - t_l > LATENCY_CAP_S and len(s2r) >= 10:
                    break
                t0 = time.perf_counter()
                v = app_mod.first_line.delay(i).get(timeout=30)
                s2r.append((time.perf_counter() - t0) * 1000)
                if not isinstance(v, float):
                    raise BenchError(f"Celery latency task returned {v!r}")
            out["s2r"] = s2r
        ex.check_alive(box["workers"], "Celery worker")
        return out
    finally:
        ex.stop(box["workers"])


# --- API submit rate (scripts/bench-api.sh) --------------------------------------------

def run_bench_api():
    env = dict(os.environ)
    env.setdefault("BENCH_SECONDS", "8")
    env.setdefault("BENCH_RB_REQUESTS", "100000")
    log("API submit rate: scripts/bench-api.sh (wrk vs redis-benchmark)")
    try:
        p = subprocess.run(["sh", str(ROOT / "scripts" / "bench-api.sh")], env=env, cwd=ROOT,
                           capture_output=True, text=True, timeout=150)
    except subprocess.TimeoutExpired:
        log("WARNING: bench-api.sh did not finish in 150 s")
        return None
    sys.stderr.write(p.stderr)
    out = {"raw": p.stdout.strip()}

    def grab(label):
        m = re.search(re.escape(label) + r"\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)", p.stdout)
        return tuple(float(x) for x in m.groups()) if m else None

    out["api"] = grab("stratq api (wrk, HTTP)")
    out["rb16"] = grab("redis-benchmark EVALSHA enqueue -P 16")
    out["rb1"] = grab("redis-benchmark EVALSHA enqueue -P 1")
    if p.returncode != 0 or not out["api"] or not out["rb16"]:
        log(f"WARNING: bench-api.sh exited {p.returncode}; output:\n{p.stdout[-2000:]}")
    return out


# --- report ------------------------------------------------------------------------

def machine():
    m = ex.machine()
    import celery
    import matplotlib
    m["celery"] = celery.__version__
    m["kombu"] = __import__("kombu").__version__
    m["redis_py"] = redis.__version__
    m["matplotlib"] = matplotlib.__version__
    return m


def fmt(v, f):
    return "-" if v is None else f.format(v)


def ratio(a, b):
    return a / b if (a is not None and b) else None


def get(res, s, n, *path):
    x = res.get(s, {}).get(n)
    for k in path:
        if x is None:
            return None
        x = x.get(k) if isinstance(x, dict) else None
    return x


PARTIAL = set()  # (row index, system) of throughput cells from a batch cut short at BATCH_CAP_S


def cell(i, s, v, f):
    return fmt(v, f) + ("*" if (i, s) in PARTIAL else "")


def build_rows(res):
    """(figure, {system: value}, format, higher_is_better)"""
    rows = []
    for kind, kname in (("noop", "no-op"), ("pandas", "pandas")):
        for n in WORKER_COUNTS:
            over = f" (oversubscribed: {n} > {NPROC} cores)" if n > NPROC else ""
            rows.append((f"{kname} jobs/s, {n} worker{'s' if n > 1 else ''}{over}",
                         {s: get(res, s, n, kind, "rate") for s in SYSTEMS}, "{:.1f}", True))
            PARTIAL.update((len(rows) - 1, s) for s in SYSTEMS if get(res, s, n, kind, "partial"))
    h = HEADLINE
    for p in (50, 99):
        rows.append((f"submit -> result p{p} ms, idle queue, {h} workers",
                     {s: (pct(res[s][h]["s2r"], p) if get(res, s, h, "s2r") else None) for s in SYSTEMS},
                     "{:.2f}", False))
    mib = lambda kb: kb / 1024 if kb is not None else None  # noqa: E731
    rows.append((f"idle RSS MiB per worker ({h} workers, whole process tree / {h})",
                 {s: mib(get(res, s, h, "idle_rss_kb")) for s in SYSTEMS}, "{:.1f}", False))
    rows.append((f"idle PSS MiB per worker ({h} workers, whole process tree / {h})",
                 {s: mib(get(res, s, h, "idle_pss_kb")) for s in SYSTEMS}, "{:.1f}", False))
    rows.append((f"busy RSS MiB per worker (peak during the pandas batch, {h} workers)",
                 {s: mib(get(res, s, h, "pandas", "peak_rss_kb")) for s in SYSTEMS}, "{:.1f}", False))
    for kind, kname in (("noop", "no-op"), ("pandas", "pandas")):
        rows.append((f"Redis commands per {kname} job ({h} workers)",
                     {s: get(res, s, h, kind, "cmds_per_job") for s in SYSTEMS}, "{:.1f}", False))
    return rows


def text_table(rows):
    cols = [LABEL[s] for s in SYSTEMS] + [f"warm/{LABEL[p].split()[0]}" + (" p4" if p == "celery4" else "") for p in PEERS]
    out = [f"{'figure':<66}" + "".join(f"{c:>18}" for c in cols)]
    for i, (name, vals, f, _) in enumerate(rows):
        cells = [cell(i, s, vals[s], f) for s in SYSTEMS]
        cells += [fmt(ratio(vals["warm"], vals[p]), "{:.2f}x") for p in PEERS]
        out.append(f"{name:<66}" + "".join(f"{c:>18}" for c in cells))
    return "\n".join(out)


def md_table(rows):
    out = ["| figure | " + " | ".join(LABEL[s] for s in SYSTEMS) + " | warm / RQ | warm / Celery | warm / Celery p4 |",
           "|---|" + "---:|" * (len(SYSTEMS) + len(PEERS))]
    for i, (name, vals, f, _) in enumerate(rows):
        cells = [cell(i, s, vals[s], f) for s in SYSTEMS]
        cells += [fmt(ratio(vals["warm"], vals[p]), "{:.2f}x") for p in PEERS]
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def api_rows(api):
    """(figure, stratq, peer, ratio) rows for the submit rate."""
    if not api or not api.get("api") or not api.get("rb16"):
        return []
    a, c16, c1 = api["api"], api["rb16"], api.get("rb1")
    rows = [("submits/s: stratq API (wrk, HTTP) vs redis-benchmark EVALSHA -P 16", a[0], c16[0], "{:.0f}")]
    if c1:
        rows.append(("submits/s: stratq API vs redis-benchmark EVALSHA -P 1", a[0], c1[0], "{:.0f}"))
    rows.append(("submit p50 ms: stratq API vs redis-benchmark -P 16", a[1], c16[1], "{:.2f}"))
    rows.append(("submit p99 ms: stratq API vs redis-benchmark -P 16", a[2], c16[2], "{:.2f}"))
    return rows


def scaling_rows(res):
    out = []
    for s in ("warm", "cold"):
        base = {k: get(res, s, WORKER_COUNTS[0], k, "rate") for k in ("noop", "pandas")}
        for n in WORKER_COUNTS:
            row = [LABEL[s], n]
            for k in ("noop", "pandas"):
                v = get(res, s, n, k, "rate")
                row += [v, ratio(v, base[k]), get(res, s, n, k, "cmds_per_job")]
            out.append(row)
    return out


def scaling_text(rows):
    head = f"{'system':<12} {'workers':>7} {'no-op/s':>9} {'x 1w':>6} {'cmds/job':>9} {'pandas/s':>9} {'x 1w':>6} {'cmds/job':>9}"
    lines = [head]
    for r_ in rows:
        lines.append(f"{r_[0]:<12} {r_[1]:>7} {fmt(r_[2], '{:.1f}'):>9} {fmt(r_[3], '{:.2f}'):>6} "
                     f"{fmt(r_[4], '{:.1f}'):>9} {fmt(r_[5], '{:.1f}'):>9} {fmt(r_[6], '{:.2f}'):>6} "
                     f"{fmt(r_[7], '{:.1f}'):>9}" + ("  oversubscribed" if r_[1] > NPROC else ""))
    return "\n".join(lines)


def scaling_md(rows):
    lines = ["| system | workers | no-op jobs/s | vs 1 worker | Redis cmds / no-op job | pandas jobs/s | vs 1 worker | Redis cmds / pandas job |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r_ in rows:
        w = f"{r_[1]}" + (f" (> {NPROC} cores)" if r_[1] > NPROC else "")
        lines.append(f"| {r_[0]} | {w} | {fmt(r_[2], '{:.1f}')} | {fmt(r_[3], '{:.2f}x')} | {fmt(r_[4], '{:.1f}')} "
                     f"| {fmt(r_[5], '{:.1f}')} | {fmt(r_[6], '{:.2f}x')} | {fmt(r_[7], '{:.1f}')} |")
    return "\n".join(lines)


COLORS = {"warm": "#1f77b4", "cold": "#9ecae1", "rq": "#d62728", "celery": "#2ca02c", "celery4": "#98df8a"}


def plots(res):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    IMG.mkdir(parents=True, exist_ok=True)
    files = []

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
    for ax, (kind, title) in zip(axes, (("noop", "no-op job"), ("pandas", "small pandas job"))):
        for s in SYSTEMS:
            xs = [n for n in WORKER_COUNTS if get(res, s, n, kind, "rate")]
            ys = [get(res, s, n, kind, "rate") for n in xs]
            if xs:
                ax.plot(xs, ys, marker="o", label=LABEL[s], color=COLORS[s], linewidth=2)
                cut = [(x, y) for x, y in zip(xs, ys) if get(res, s, x, kind, "partial")]
                if cut:  # batches cut short at BATCH_CAP_S: hollow markers
                    ax.plot(*zip(*cut), "o", color="white", markeredgecolor=COLORS[s], markersize=7)
        ax.set_yscale("log")
        ax.set_xticks(WORKER_COUNTS)
        if max(WORKER_COUNTS) > NPROC:
            ax.axvspan(NPROC + 0.5, max(WORKER_COUNTS) + 0.5, color="0.92", zorder=0)
            ax.text(NPROC + 0.6, ax.get_ylim()[0] * 1.2, f"> {NPROC} cores", fontsize=8, color="0.4")
        ax.set_xlim(0.7, max(WORKER_COUNTS) + 0.5)
        ax.set_xlabel("workers")
        ax.set_ylabel("jobs/s (log scale)")
        ax.set_title(f"Throughput, {title}")
        ax.grid(True, which="both", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    path = IMG / "bench-throughput.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    files.append(path)

    h = HEADLINE
    systems = [s for s in SYSTEMS if get(res, s, h, "s2r")]
    fig, ax = plt.subplots(figsize=(9.5, 4.2))
    width = 0.38
    for j, p in enumerate((50, 99)):
        vals = [pct(res[s][h]["s2r"], p) for s in systems]
        xs = [i + (j - 0.5) * width for i in range(len(systems))]
        bars = ax.bar(xs, vals, width, label=f"p{p}", color=[COLORS[s] for s in systems],
                      alpha=1.0 if p == 50 else 0.55, edgecolor="black", linewidth=0.5)
        for b, v in zip(bars, vals):
            ax.annotate(f"{v:.1f}", (b.get_x() + b.get_width() / 2, v), ha="center", va="bottom", fontsize=8,
                        textcoords="offset points", xytext=(0, 2))
    ax.set_xticks(range(len(systems)))
    ax.set_xticklabels([LABEL[s] for s in systems])
    ax.set_yscale("log")
    ax.set_ylabel("ms (log scale)")
    ax.set_title(f"Submit -> result latency, idle queue, {h} workers (solid p50, light p99)")
    ax.grid(True, axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    path = IMG / "bench-latency.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    files.append(path)

    systems = [s for s in SYSTEMS if get(res, s, h, "idle_rss_kb")]
    fig, ax = plt.subplots(figsize=(9.5, 4.2))
    for j, (key, lab) in enumerate((("idle", "idle"), ("busy", "busy (peak, pandas batch)"))):
        vals = [(get(res, s, h, "idle_rss_kb") if key == "idle" else get(res, s, h, "pandas", "peak_rss_kb") or 0) / 1024
                for s in systems]
        xs = [i + (j - 0.5) * width for i in range(len(systems))]
        bars = ax.bar(xs, vals, width, label=lab, color=[COLORS[s] for s in systems],
                      alpha=1.0 if key == "idle" else 0.55, edgecolor="black", linewidth=0.5)
        for b, v in zip(bars, vals):
            ax.annotate(f"{v:.0f}", (b.get_x() + b.get_width() / 2, v), ha="center", va="bottom", fontsize=8,
                        textcoords="offset points", xytext=(0, 2))
    ax.set_xticks(range(len(systems)))
    ax.set_xticklabels([LABEL[s] for s in systems])
    ax.set_ylabel("MiB per worker")
    ax.set_title(f"RSS per worker, {h} workers (solid idle, light busy)")
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    path = IMG / "bench-rss.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    files.append(path)
    return files


CONFIG_NOTES = """\
- **One machine, one run, one redis-server** ({redis}, loopback, `--save '' --appendonly no`),
  `FLUSHALL` between runs. The benchmark client (Python) shares the {nproc} cores with the
  systems under test. Nothing else runs in parallel. Worker counts: {counts}; with {nproc} cores,
  more than {nproc} workers oversubscribe the CPU (the rows and plots say so).
- **stratq warm**: N x `stratq worker` (`STRATQ_MODE=warm`, `STRATQ_PRELOAD` default
  `numpy,pandas`, `STRATQ_LOG_LEVEL=warn`, all else default: the whole sandbox this host allows),
  one `stratq api` in front; jobs submitted with `POST /v1/jobs/batch`.
- **stratq cold**: the same with `STRATQ_MODE=cold` (fork + exec `/usr/bin/python3` per job).
- **RQ {rq}**: N x `bench/rq_worker.py`: numpy, pandas and the job module imported before RQ's
  default `Worker` starts (it forks a work horse per job, which inherits them). Jobs enqueued with
  `Queue.enqueue_many` (one pipeline). Default pickle serializer and result TTL.
- **Celery {celery}** (kombu {kombu}): one `python3 -m celery -A celery_jobs worker
  --pool=prefork --concurrency=N --prefetch-multiplier=1 -O fair --loglevel=WARNING`
  (`bench/celery_jobs.py`: broker `redis://…/0`, result backend `redis://…/1`,
  `task_acks_late=True`, `worker_prefetch_multiplier=1`, JSON serializer; numpy and pandas are
  imported by the task module, so the pool children forked from the master have them loaded).
  Tasks sent with `task.delay(i)` one by one, as a Celery client does (which also subscribes to
  each result's channel: that is part of Celery's command count). Gossip, mingle and heartbeat are
  left at their defaults.
- **Celery prefetch 4**: the same worker with Celery's default `--prefetch-multiplier=4` and
  without `-O fair` (acks_late kept). With prefetch 1 on the Redis transport, Celery's throughput
  stalls (the consumer stops polling when its one slot per process is full and resumes late:
  tens of jobs/s, and the p99 latency spikes); with prefetch 4 it is not stalled. Both are shown so
  that neither Celery figure is a straw man; "Celery 5.2" is the configuration the issue asks for.
- **Jobs**: no-op (returns its parameter); pandas
  (`pd.Series(range(1000), dtype='float64').rolling(20).mean().iloc[-1]`); the latency job returns
  `time.time() * 1000`. Same statements in every system (`def run(ctx)` for stratq, functions in
  `bench/rq_jobs.py` and tasks in `bench/celery_jobs.py`).
- **Throughput**: workers started, registered and idle; 2N warm-up jobs of each kind not counted;
  then the whole batch is enqueued at once and timed from the first enqueue until the completion
  count (stratq: terminal events heard on its events channel; RQ finished + failed registries,
  Celery result keys in the backend db) reaches the batch size, polled every 5 ms. Every job is checked to have succeeded.
  Batch sizes (no-op, pandas): stratq warm {n_warm}, stratq cold {n_cold}, RQ {n_rq}, Celery {n_celery};
  one batch per cell.
- **Latency**: {h} workers, idle queue, one job at a time ({lat} jobs; cold {cold_lat}), measured on
  the client from submit to having the result: stratq `POST /v1/jobs?wait=30` on a keep-alive
  connection; RQ `enqueue` then `get_status()` every 1 ms (RQ 1.13 has no blocking wait);
  Celery `task.delay(i).get()` (the Redis backend's pub/sub).
- **Memory**: `VmRSS` (and PSS from `smaps_rollup`) summed over every process of the workers
  (stratq: supervisors, executors, warm spare children; RQ: workers; Celery: the master and its
  pool children), divided by the worker count. Idle: once ready, before any job. Busy: the peak of
  that sum, sampled every ~30 ms during the pandas batch (job processes and work horses included).
  RSS counts pages shared copy-on-write once per process, PSS splits them. Not counted: the
  `stratq api` ({api_rss:.1f} MiB RSS idle, one per deployment, not per worker) and redis-server.
- **Redis commands per job**: `INFO stats` `total_commands_processed` before and after a
  throughput batch, minus the benchmark's own completion polls (counted; none for stratq, whose
  completions the benchmark hears on the events channel it subscribes to, 1 command per poll for
  Celery, 2 for RQ) and its `INFO`s, divided by the batch size. Redis counts every
  command a Lua script runs (`redis.call`) as well as the `EVALSHA`, so this is work done in Redis,
  not round trips (stratq and RQ do most of theirs in scripts / `MULTI` pipelines). It includes the
  client's enqueue, the workers' idle polling and heartbeats during the batch, and, for stratq,
  the API's commands.
- **API submit rate**: `scripts/bench-api.sh` (its own redis-server and `stratq api`, no workers):
  wrk (2 threads, 64 keep-alive connections, {api_secs} s) posting a small job to `POST /v1/jobs`,
  against redis-benchmark replaying the exact `EVALSHA` the API sends for one submit (captured with
  MONITOR), 64 clients, pipelined 16 and not.
"""


def breakdown(res, kind="noop"):
    """Redis commands per job by command, at the headline worker count."""
    lines = []
    for s in SYSTEMS:
        bc = get(res, s, HEADLINE, kind, "by_cmd")
        if bc:
            top = list(bc.items())[:10]
            lines.append(f"{LABEL[s]:<18} " + ", ".join(f"{k} {v:.1f}" for k, v in top))
    return "\n".join(lines)


def report(res, api, m, elapsed, files):
    rows = build_rows(res)
    srows = scaling_rows(res)
    lat_n = ", ".join(f"{LABEL[s]} {len(get(res, s, HEADLINE, 's2r'))}" for s in SYSTEMS if get(res, s, HEADLINE, "s2r"))
    foot = (f"(* batch cut short after {BATCH_CAP_S} s: jobs finished / time so far. Latency samples: {lat_n}.)")
    arows = api_rows(api)
    api_text = ""
    if arows:
        api_text = "\n".join([f"{'figure':<70} {'stratq':>10} {'peer':>10} {'ratio':>7}"] +
                             [f"{n:<70} {fmt(a, f):>10} {fmt(b, f):>10} {fmt(ratio(a, b), '{:.3f}'):>7}"
                              for n, a, b, f in arows])
    print()
    print(f"stratq bench: {m['nproc']} cores ({m['cpu']}), {m['mem']}, kernel {m['kernel']}, Python {m['python']}, "
          f"RQ {m['rq']}, Celery {m['celery']}, redis {m['redis']}; worker counts {WORKER_COUNTS}"
          + (f" ({max(WORKER_COUNTS)} > {NPROC} cores: oversubscribed)" if max(WORKER_COUNTS) > NPROC else ""))
    print()
    print(text_table(rows))
    print(foot)
    print()
    print("API submit rate (scripts/bench-api.sh), peer = redis-benchmark, same enqueue EVALSHA:")
    print(api_text or "  (not measured: bench-api.sh failed; see above)")
    print()
    print("stratq scaling (x 1w: against 1 worker; cmds/job: Redis commands per job):")
    print(scaling_text(srows))
    print()
    print(f"Redis commands per no-op job by command ({HEADLINE} workers; script-internal calls included):")
    print(breakdown(res))
    print(f"\n(total run {elapsed:.0f} s; written to {DOC.relative_to(ROOT)} and "
          + ", ".join(str(f.relative_to(ROOT)) for f in files) + ")")

    api_md = ""
    if arows:
        api_md = "\n".join(["| figure | stratq API | redis-benchmark | ratio |", "|---|---:|---:|---:|"] +
                           [f"| {n} | {fmt(a, f)} | {fmt(b, f)} | {fmt(ratio(a, b), '{:.3f}')} |"
                            for n, a, b, f in arows])
    else:
        api_md = "Not measured in this run: `scripts/bench-api.sh` failed."
    warm_api = get(res, "warm", HEADLINE, "api_rss_kb") or 0
    notes = CONFIG_NOTES.format(
        redis=m["redis"], nproc=NPROC, counts=", ".join(map(str, WORKER_COUNTS)), rq=m["rq"],
        celery=m["celery"], kombu=m["kombu"], n_warm=N["warm"], n_cold=N["cold"], n_rq=N["rq"],
        n_celery=N["celery"], h=HEADLINE, lat=LATENCY_N["warm"], cold_lat=LATENCY_N["cold"],
        api_rss=warm_api / 1024, api_secs=os.environ.get("BENCH_SECONDS", "8"))
    imgs = "\n\n".join(f"![{f.stem}](img/{f.name})" for f in files)
    doc = f"""# stratq benchmarks (`make bench`)

Written by `make bench` (`bench/suite.py`); overwritten on each run, tables and plots alike.
stratq warm and cold against RQ {m['rq']} and Celery {m['celery']} on the same machine, in the
same run, against the same redis-server. Ratios are stratq warm / peer: above 1 is better for
jobs/s, below 1 is better for milliseconds, MiB and commands.

Run {m['date']}, stratq {m['commit']}, total {elapsed:.0f} s, on {NPROC} cores
({m['cpu']}){f"; {max(WORKER_COUNTS)} workers oversubscribe the {NPROC} cores" if max(WORKER_COUNTS) > NPROC else ""}.

## Results

{md_table(rows)}

{foot}

## API submit rate

The API's submit rate against the ceiling Redis itself sets for the same enqueue script.

{api_md}

## Scaling

stratq throughput against the worker count (up to the core count and beyond), and the cost
of a job in Redis commands.

{scaling_md(srows)}

Redis commands per no-op job by command ({HEADLINE} workers; the commands a Lua script runs
count each, as Redis counts them):

```
{breakdown(res)}
```

## Plots

{imgs}

Hollow markers: a batch cut short after {BATCH_CAP_S} s. The grey band is more workers than cores.

## Machine

| | |
|---|---|
| CPUs (nproc) | {m['nproc']} ({m['cpu']}) |
| memory | {m['mem']} |
| kernel | {m['kernel']} |
| Python | {m['python']} (`/usr/bin/python3`), numpy {m['numpy']}, pandas {m['pandas']}, redis-py {m['redis_py']} |
| RQ | {m['rq']} (Debian python3-rq) |
| Celery | {m['celery']}, kombu {m['kombu']} (Debian python3-celery) |
| redis-server | {m['redis']} |
| OpenBLAS environment | {m['openblas']} |

## How each system was configured and measured

{notes}
`make bench-exec` (docs/benchmarks-exec.md) has the finer stratq-vs-RQ figures at 2 workers
(dequeue -> first line to the µs, CPU per job, the sandbox's cost), the fork floor (what forking
the warm executor's interpreter alone costs, measured in the same run, and stratq's no-op rate
as a share of it), and where a warm job's CPU goes, part by part, from a whole-system profile
(the kernel's fork and exit, page faults, the sandbox's set-up, the job's Python, the worker,
the API, Redis). docs/architecture.md ("The cost of a fork") reads those figures.

## The protocol alone

`make bench-protocol` ([benchmarks-protocol.md](benchmarks-protocol.md)): job lifecycles per
second that one Redis core sustains with no Python, and 1 against 3 Redis Cluster primaries.
`make bench-fair` ([benchmarks-fair.md](benchmarks-fair.md)): enqueue and take rates with
fair share among 1 and 100 tenants, side by side with the single FIFO path.
"""
    DOC.write_text(doc)


def main():
    if not BIN.exists():
        raise SystemExit(f"bench: {BIN} is missing; run make")
    t_start = time.monotonic()
    ex.arm_deadline(DEADLINE_S)
    tmp = tempfile.mkdtemp(prefix="stratq-bench.")
    try:
        api_res = run_bench_api() if os.environ.get("BENCH_SKIP_API") != "1" else None
        redis_p, api_p, r, api, rurl = ex.start_stack(tmp)
        rport = int(rurl.rsplit(":", 1)[1])
        m = machine()
        os.environ["BENCH_CELERY_BROKER"] = f"redis://127.0.0.1:{rport}/0"
        os.environ["BENCH_CELERY_BACKEND"] = f"redis://127.0.0.1:{rport}/1"
        import celery_jobs
        only = set(os.environ.get("BENCH_SYSTEMS", ",".join(SYSTEMS)).split(","))
        res = {s: {} for s in SYSTEMS}
        for n in WORKER_COUNTS:
            for s in SYSTEMS:
                if s not in only:
                    continue
                log(f"--- {LABEL[s]}, {n} worker{'s' if n > 1 else ''} ({time.monotonic() - t_start:.0f} s)")
                if s in ("warm", "cold"):
                    res[s][n] = run_stratq(s, n, rurl, r, api, tmp)
                    res[s][n]["api_rss_kb"] = rss_kb(api_p.pid)
                elif s == "rq":
                    res[s][n] = run_rq(n, rurl, r, tmp)
                else:
                    res[s][n] = run_celery(s, n, rport, r, tmp, celery_jobs)
        ex.check_alive([api_p, redis_p], "stratq api / redis-server")
        signal.alarm(0)
        (Path(tmp) / "results.json").write_text(json.dumps(res))
        if os.environ.get("BENCH_RESULTS_JSON"):
            Path(os.environ["BENCH_RESULTS_JSON"]).write_text(json.dumps({"res": res, "api": api_res}))
        files = plots(res)
        report(res, api_res, m, time.monotonic() - t_start, files)
        return 0
    except BenchError as e:
        ex.log_failure(e, tmp, log)
        return 1
    finally:
        signal.alarm(0)
        ex.stop(list(reversed(ex.STARTED)))
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

