"""`make bench-protocol`: the Redis protocol alone, no Python jobs (issue 16).

How many full no-op job lifecycles one Redis core sustains, and how that
scales from 1 to 3 Redis Cluster primaries. The load comes from
build/bench/protocol_load (bench/protocol_load.c): N threads, each with its
own connection, enqueueing a job as the API does (enqueue.lua) and running
it as a worker does (BLMOVE, start.lua, complete.lua; heartbeat.lua and
count.lua once a second, promote and reap as a worker's housekeeping), through
stratq's own C calls. It checks at the end that every job it enqueued
succeeded and exits 1 otherwise; so does this script.

  single Redis  one redis-server (loopback, free port, --save '' --appendonly
                no), one driver with each of THREADS threads (4, 8, 16), FLUSHALL
                between runs;
  cluster       Redis Cluster (--appendonly no) with 1 primary holding every
                slot, then 3 primaries (CLUSTER ADDSLOTSRANGE, SET-CONFIG-EPOCH,
                MEET); the same offered load on both: 3 queues whose names hash
                onto the 3 primaries' slot ranges, one driver process per queue
                (CLUSTER_THREADS threads each), given the cluster's seeds; then
                one queue alone (CLUSTER_ONE_THREADS threads) on each, which
                shows what a lifecycle costs its own primary and each other
                one. The scripts publish with SPUBLISH there (sharded pub/sub,
                as stratq does on a cluster); the one-queue run on 3
                primaries is then made again with plain PUBLISH (the
                driver's --publish PUBLISH, what stratq did before), which
                Redis Cluster carries to every node over the cluster bus.

What is measured, in a window that leaves out each run's first WARMUP_S and
its last second (the connections, the script loads and the end checks):

  lifecycles        BLMOVE calls (INFO commandstats): each lifecycle takes
                    exactly one;
  Redis CPU         used_cpu_user + used_cpu_sys (INFO cpu) of each server;
  per Redis core    lifecycles / Redis CPU-seconds: what one core sustains
                    when Redis has it to itself;
  commands          INFO commandstats calls summed (every command a script
                    runs counts, as Redis counts it), the bench's own INFO
                    calls left out, per lifecycle.

The raw lifecycles/s is the drivers' own count over their whole run. This
machine's cores are shared by Redis and the drivers (and, with 3 primaries, by
three servers), so raw throughput cannot grow with the primaries: the per-core
figure is the capacity metric.

Prints a table and writes docs/benchmarks-protocol.md (docs/benchmarks.md,
which `make bench` rewrites wholesale, links to it). Every wait has a
deadline; the whole run is bounded by BENCH_DEADLINE_S (default 240 s). Stops
only what it started, by pid.
"""

import datetime
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from exec import (  # noqa: E402  (bench/exec.py: processes and deadlines)
    STARTED, BenchError, arm_deadline, free_port, log_failure, start, start_redis, stop, wait_for)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "chaos"))
from stack import cluster_port  # noqa: E402  (shared with tests/integration/cluster.py)

import redis  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LOAD = Path(os.environ.get("STRATQ_PROTOCOL_LOAD", ROOT / "build" / "bench" / "protocol_load"))
DOC = ROOT / "docs" / "benchmarks-protocol.md"


def env_int(name, default):
    return int(os.environ.get(name, str(default)))


THREADS = [int(x) for x in os.environ.get("BENCH_PROTOCOL_THREADS", "4,8,16").split(",")]
SINGLE_S = env_int("BENCH_PROTOCOL_SECONDS", 8)
CLUSTER_S = env_int("BENCH_PROTOCOL_CLUSTER_SECONDS", 10)
CLUSTER_THREADS = env_int("BENCH_PROTOCOL_CLUSTER_THREADS", 4)
CLUSTER_ONE_THREADS = env_int("BENCH_PROTOCOL_CLUSTER_ONE_THREADS", 8)
CLUSTER_QUEUES = 3
WARMUP_S = 1.5
# The commands the drivers send in the window: their time (a script's
# EVALSHA includes the commands it runs) is Redis' time in commands; the rest
# of its CPU is the event loop and the sockets.
TOP_LEVEL = ("evalsha", "blmove", "zrangebyscore", "set")
DEADLINE_S = env_int("BENCH_DEADLINE_S", 240)


def log(msg):
    print(f"bench-protocol: {msg}", file=sys.stderr, flush=True)


# --- Redis ---------------------------------------------------------------------

def client(port):
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=10, decode_responses=True)


def wait_ping(port, proc):
    r = client(port)

    def up():
        if proc.poll() is not None:
            raise BenchError(f"redis-server on port {port} exited with {proc.returncode}")
        try:
            return r.ping()
        except (redis.ConnectionError, redis.BusyLoadingError):
            return False

    wait_for(up, 15, f"redis-server on port {port}", interval=0.05)
    return r


# The publish commands: PUBLISH on a plain server, SPUBLISH (sharded) on a
# cluster.
PUBLISHES = ("publish", "spublish")


def sample(r, cluster=False):
    """Redis CPU-seconds so far, the calls and µs of each command (INFO's
    calls left out) and, in a cluster, the publish messages (PUBLISH, and
    SPUBLISH's, which only go to the replicas of the slot's shard) the node
    received over the cluster bus."""
    cpu = r.info("cpu")
    cs = r.info("commandstats")
    bus = 0
    if cluster:
        for line in r.execute_command("CLUSTER", "INFO").splitlines():
            if line.startswith(("cluster_stats_messages_publish_received:",
                                "cluster_stats_messages_publishshard_received:")):
                bus += int(line.split(":")[1])
    return {"cpu": float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]),
            "calls": {k[len("cmdstat_"):]: int(v["calls"]) for k, v in cs.items()
                      if k != "cmdstat_info"},
            "usec": {k[len("cmdstat_"):]: int(v["usec"]) for k, v in cs.items()},
            "bus": bus,
            "t": time.monotonic()}


def delta(a, b):
    calls = {k: n - a["calls"].get(k, 0) for k, n in b["calls"].items()}
    calls = {k: n for k, n in calls.items() if n > 0}
    usec = sum(b["usec"].get(k, 0) - a["usec"].get(k, 0) for k in TOP_LEVEL)
    publish_us = sum(b["usec"].get(k, 0) - a["usec"].get(k, 0) for k in PUBLISHES)
    publishes = sum(calls.get(k, 0) for k in PUBLISHES)
    return {"cpu": b["cpu"] - a["cpu"], "calls": calls, "usec": usec, "bus": b["bus"] - a["bus"],
            "publishes": publishes, "publish_us": publish_us / max(1, publishes),
            "lifecycles": calls.get("blmove", 0),
            "commands": sum(calls.values()), "wall": b["t"] - a["t"]}


# --- the driver ------------------------------------------------------------------

def start_driver(tmp, name, args):
    log_path = os.path.join(tmp, f"{name}.log")
    return start([str(LOAD), *args], log_path=log_path)


def finish_drivers(procs, seconds):
    """Waits for the drivers (they stop by themselves), returns their JSON
    lines and their CPU-seconds (the children's rusage they add)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = []
    for p in procs:
        try:
            p.wait(timeout=seconds + 60)
        except subprocess.TimeoutExpired:
            raise BenchError(f"protocol_load pid {p.pid} did not stop after {seconds + 60} s")
        text = Path(p.log_path).read_text(errors="replace")
        line = next((ln for ln in reversed(text.splitlines()) if ln.startswith("{")), None)
        if p.returncode != 0 or line is None:
            raise BenchError(f"protocol_load pid {p.pid} exited with {p.returncode}:\n{text[-2000:]}")
        res = json.loads(line)
        if res["errors"] or res["lost"]:
            raise BenchError(f"protocol_load lost jobs or had errors:\n{text[-2000:]}")
        out.append(res)
        STARTED.remove(p)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return out, cpu


def measure(tmp, label, clients, drivers, seconds, cluster=False):
    """Starts the drivers (name, args), samples every server in the window,
    waits for the drivers. clients: {name: redis client} of the servers."""
    procs = [start_driver(tmp, f"{label}-{name}", args) for name, args in drivers]
    t0 = time.monotonic()
    time.sleep(WARMUP_S)
    a = {n: sample(r, cluster) for n, r in clients.items()}
    time.sleep(max(0.5, t0 + seconds - 1.0 - time.monotonic()))
    b = {n: sample(r, cluster) for n, r in clients.items()}
    results, driver_cpu = finish_drivers(procs, seconds)
    return {"drivers": results, "driver_cpu": driver_cpu,
            "servers": {n: delta(a[n], b[n]) for n in clients}}


# --- single Redis ------------------------------------------------------------------

def run_single(tmp):
    port = free_port()
    proc = start_redis(port, tmp)
    try:
        r = wait_ping(port, proc)
        rows = []
        for threads in THREADS:
            r.flushall()
            m = measure(tmp, f"single-{threads}", {"redis": r},
                        [("driver", ["--redis", f"redis://127.0.0.1:{port}", "--threads",
                                     str(threads), "--seconds", str(SINGLE_S)])], SINGLE_S)
            d, s = m["drivers"][0], m["servers"]["redis"]
            row = {"threads": threads, "rate": d["lifecycles_per_s"], "lifecycles": d["lifecycles"],
                   "p50_us": d["p50_us"], "p99_us": d["p99_us"], "sampled": d["sampled"],
                   "redis_cores": s["cpu"] / s["wall"], "per_core": s["lifecycles"] / s["cpu"],
                   "cmds": s["commands"] / s["lifecycles"], "calls": s["calls"],
                   "cpu_us": s["cpu"] * 1e6 / s["lifecycles"], "cmd_us": s["usec"] / s["lifecycles"],
                   "window_lifecycles": s["lifecycles"],
                   "driver_cores": m["driver_cpu"] / d["seconds"]}
            log(f"single Redis, {threads} threads: {row['rate']:.0f} lifecycles/s, "
                f"{row['per_core']:.0f} per Redis core-second, {row['cmds']:.2f} commands each")
            rows.append(row)
        return rows
    finally:
        stop([proc])


# --- Redis Cluster ---------------------------------------------------------------



def slot_ranges(n):
    step = 16384 // n
    return [(i * step, 16383 if i == n - 1 else (i + 1) * step - 1) for i in range(n)]


def start_cluster(tmp, n):
    """n primaries, no replicas, no persistence; each owns an equal slot range."""
    nodes = []
    for i in range(n):
        port = cluster_port()
        d = os.path.join(tmp, f"node-{n}-{port}")
        os.makedirs(d)
        proc = start(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                      "--cluster-enabled", "yes", "--cluster-config-file", os.path.join(d, "nodes.conf"),
                      "--cluster-node-timeout", "5000", "--save", "", "--appendonly", "no",
                      "--dir", d, "--logfile", os.path.join(d, "redis.log")])
        nodes.append({"port": port, "proc": proc})
    for i, (node, (lo, hi)) in enumerate(zip(nodes, slot_ranges(n))):
        node["r"] = wait_ping(node["port"], node["proc"])
        node["r"].execute_command("CLUSTER", "SET-CONFIG-EPOCH", i + 1)
        node["r"].execute_command("CLUSTER", "ADDSLOTSRANGE", lo, hi)
        node["range"] = (lo, hi)
    for node in nodes[1:]:
        node["r"].execute_command("CLUSTER", "MEET", "127.0.0.1", nodes[0]["port"])

    def ok():
        views = set()
        for node in nodes:
            if "cluster_state:ok" not in node["r"].execute_command("CLUSTER", "INFO"):
                return False
            views.add(tuple(sorted((int(s[0]), int(s[1]), int(s[2][1]))
                                   for s in node["r"].execute_command("CLUSTER", "SLOTS"))))
        return len(views) == 1 and len(next(iter(views))) == n

    wait_for(ok, 30, f"the {n}-primary cluster to say cluster_state:ok and agree on slots",
             interval=0.1)
    return nodes


def queue_names(r):
    """One queue name per third of the slots (the 3-primary layout), so that
    with 3 primaries each queue lives on its own."""
    names = []
    for lo, hi in slot_ranges(CLUSTER_QUEUES):
        for k in range(10000):
            name = f"bench-{len(names)}-{k}"
            if lo <= int(r.execute_command("CLUSTER", "KEYSLOT", name)) <= hi:
                names.append(name)
                break
    if len(names) != CLUSTER_QUEUES:
        raise BenchError("no queue name hashes onto one of the slot ranges")
    return names


def cluster_row(n, nodes, queues, m):
    servers = m["servers"]
    lifecycles = sum(s["lifecycles"] for s in servers.values())
    cpu = sum(s["cpu"] for s in servers.values())
    publishes = sum(s["publishes"] for s in servers.values())
    return {"primaries": n, "queues": queues,
            "rate": sum(d["lifecycles_per_s"] for d in m["drivers"]),
            "p50_us": max(d["p50_us"] for d in m["drivers"]),
            "p99_us": max(d["p99_us"] for d in m["drivers"]),
            "primary_cpu": [servers[node["port"]]["cpu"] for node in nodes],
            "primary_lifecycles": [servers[node["port"]]["lifecycles"] for node in nodes],
            "window": max(s["wall"] for s in servers.values()), "per_core": lifecycles / cpu,
            "lifecycles": lifecycles, "cpu_us": cpu * 1e6 / lifecycles,
            "cmd_us": sum(s["usec"] for s in servers.values()) / lifecycles,
            "bus": sum(s["bus"] for s in servers.values()) / lifecycles,
            "publish_us": sum(s["publish_us"] * s["publishes"]
                              for s in servers.values()) / max(1, publishes),
            "cmds": sum(s["commands"] for s in servers.values()) / lifecycles,
            "calls_publish": publishes / lifecycles,
            "driver_cores": m["driver_cpu"] / max(d["seconds"] for d in m["drivers"])}


def one_queue_costs(one, n):
    """What a lifecycle of the one-queue run cost its own primary and each
    other one (CPU µs)."""
    owner = max(range(n), key=lambda i: one["primary_lifecycles"][i])
    others = [i for i in range(n) if i != owner]
    one["owner_us"] = one["primary_cpu"][owner] * 1e6 / one["lifecycles"]
    one["other_us"] = (sum(one["primary_cpu"][i] for i in others) / len(others)
                       * 1e6 / one["lifecycles"] if others else 0.0)
    return one


def run_cluster(tmp, n):
    """The 3 queues on n primaries, then one queue alone (on 3 primaries,
    the others idle): what a lifecycle costs its own primary and what it
    costs each of the others, with sharded pub/sub (SPUBLISH) and, on 3
    primaries, again with plain PUBLISH, which the cluster bus carries to
    every node."""
    nodes = start_cluster(tmp, n)
    try:
        queues = queue_names(nodes[0]["r"])
        seeds = ",".join(f"127.0.0.1:{node['port']}" for node in nodes)
        clients = {node["port"]: node["r"] for node in nodes}

        def driver(q, threads, publish="SPUBLISH"):
            return (q, ["--redis", f"redis://127.0.0.1:{nodes[0]['port']}", "--cluster", seeds,
                        "--queue", q, "--threads", str(threads), "--seconds", str(CLUSTER_S),
                        "--publish", publish])

        m = measure(tmp, f"cluster-{n}", clients, [driver(q, CLUSTER_THREADS) for q in queues],
                    CLUSTER_S, cluster=True)
        row = cluster_row(n, nodes, queues, m)
        log(f"{n} primaries: {row['rate']:.0f} lifecycles/s, {row['per_core']:.0f} per "
            f"primary core-second, primaries' CPU {', '.join(f'{c:.2f}' for c in row['primary_cpu'])} s "
            f"in {row['window']:.1f} s")
        for node in nodes:
            node["r"].flushall()
        m = measure(tmp, f"cluster-{n}-one", clients, [driver(queues[0], CLUSTER_ONE_THREADS)],
                    CLUSTER_S, cluster=True)
        one = one_queue_costs(cluster_row(n, nodes, queues[:1], m), n)
        row["one_queue"] = one
        log(f"{n} primaries, one queue: {one['rate']:.0f} lifecycles/s, {one['owner_us']:.0f} µs "
            f"of its primary's CPU and {one['other_us']:.1f} µs of each other's per lifecycle")
        if n > 1:
            for node in nodes:
                node["r"].flushall()
            m = measure(tmp, f"cluster-{n}-one-publish", clients,
                        [driver(queues[0], CLUSTER_ONE_THREADS, "PUBLISH")], CLUSTER_S, cluster=True)
            plain = one_queue_costs(cluster_row(n, nodes, queues[:1], m), n)
            row["one_queue_publish"] = plain
            log(f"{n} primaries, one queue, plain PUBLISH: {plain['rate']:.0f} lifecycles/s, "
                f"{plain['owner_us']:.0f} µs of its primary's CPU and {plain['other_us']:.1f} µs "
                f"of each other's per lifecycle")
        return row
    finally:
        stop([node["proc"] for node in nodes])


# --- report --------------------------------------------------------------------------

def machine():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    rv = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                                capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        commit = "?"
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    return {"nproc": os.cpu_count(), "cpu": cpu, "kernel": platform.release(), "load": load,
            "redis": next((x[2:] for x in rv if x.startswith("v=")), "?"), "commit": commit,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def md(rows):
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" + "---:|" * (len(rows[0]) - 1)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows[1:]]
    return "\n".join(out)


def text(rows):
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(str(c).rjust(w) if i else str(c).ljust(w)
                               for i, (c, w) in enumerate(zip(r, widths))) for r in rows)


def report(single, clusters, m, elapsed):
    best = max(single, key=lambda r: r["rate"])
    srows = [["threads", "lifecycles/s", "p50 µs", "p99 µs", "Redis cores busy",
              "lifecycles per Redis core-second", "Redis CPU µs per lifecycle (in commands)",
              "commands per lifecycle", "driver cores busy"]]
    for r in single:
        srows.append([r["threads"], f"{r['rate']:.0f}", r["p50_us"], r["p99_us"],
                      f"{r['redis_cores']:.2f}", f"{r['per_core']:.0f}",
                      f"{r['cpu_us']:.0f} ({r['cmd_us']:.0f})", f"{r['cmds']:.2f}",
                      f"{r['driver_cores']:.2f}"])
    one, three = clusters
    alone, lone, plain = three["one_queue"], one["one_queue"], three["one_queue_publish"]
    crows = [["configuration", "lifecycles/s", "p99 µs (worst driver)",
              "lifecycles/s per primary (window)", "CPU-s per primary (window)",
              "lifecycles per primary core-second", "Redis CPU µs per lifecycle (in commands)",
              "µs per SPUBLISH (PUBLISH)", "bus publish messages received per lifecycle",
              "commands per lifecycle", "drivers' cores busy"]]
    for label, r in ((f"1 primary, {CLUSTER_QUEUES} queues", one),
                     (f"3 primaries, {CLUSTER_QUEUES} queues", three),
                     ("1 primary, 1 queue", lone),
                     ("3 primaries, 1 queue (the others idle)", alone),
                     ("3 primaries, 1 queue, plain PUBLISH (the others idle)", plain)):
        crows.append([label, f"{r['rate']:.0f}", r["p99_us"],
                      " / ".join(f"{n / r['window']:.0f}" for n in r["primary_lifecycles"]),
                      " / ".join(f"{c:.2f}" for c in r["primary_cpu"]) + f" in {r['window']:.1f} s",
                      f"{r['per_core']:.0f}", f"{r['cpu_us']:.0f} ({r['cmd_us']:.0f})",
                      f"{r['publish_us']:.2f}", f"{r['bus']:.2f}", f"{r['cmds']:.2f}",
                      f"{r['driver_cores']:.2f}"])
    raw = three["rate"] / one["rate"]
    core = three["per_core"] / one["per_core"]
    # The capacity of 3 primaries with a core each, the queues spread evenly:
    # each primary runs a third of the lifecycles (owner_us each) and hears
    # the events of the other two thirds (other_us each).
    x, y = alone["owner_us"], alone["other_us"]
    xp, yp = plain["owner_us"], plain["other_us"]
    cap1 = 1e6 / lone["cpu_us"]
    cap3 = 3e6 / (lone["cpu_us"] + 2 * y)

    # What each primary past the first added with plain PUBLISH: its
    # sender's share of the owner's extra cost, and its own.
    per_node_p = max(yp, (xp - lone["cpu_us"]) / 2 + yp)
    scaling = (f"3 primaries against 1, {CLUSTER_QUEUES} queues, on this machine's {m['nproc']} "
               f"shared cores: raw lifecycles/s x{raw:.2f}, lifecycles per primary core-second "
               f"x{core:.2f}")
    # Sharded: nothing a primary does for its own queues depends on the other
    # nodes, so each added primary costs a lifecycle only what it spends
    # itself (y, its idle load); plain PUBLISH: the owner also sends each
    # event to every other node (its extra over a lone primary, per other
    # node), and each other node receives it.
    capn = ", ".join(f"{n} primaries {n * 1e6 / (lone['cpu_us'] + (n - 1) * y):.0f}"
                     for n in (6, 10))
    capn_p = ", ".join(f"{n} {n * 1e6 / (lone['cpu_us'] + (n - 1) * per_node_p):.0f}"
                       for n in (3, 6, 10))
    why = (f"A lifecycle publishes {three['calls_publish']:.0f} events (`queued`, `running`, "
           f"`succeeded`). On a cluster stratq publishes them with `SPUBLISH` (sharded pub/sub): "
           f"an event stays on the primary that owns its queue's slot, and the cluster bus carried "
           f"{three['bus']:.2f} publish messages per lifecycle to the other nodes; an `SPUBLISH` "
           f"cost {three['publish_us']:.2f} µs. With one queue driven and the other primaries "
           f"idle, a lifecycle cost its own primary {x:.0f} µs of CPU and each other primary "
           f"{y:.1f} µs, their idle load (cron, the cluster bus' pings), against {lone['cpu_us']:.0f} "
           f"µs on a lone primary with the same driver: nothing an `SPUBLISH` does depends on the "
           f"other nodes, and the gap between the two is this machine's noise between runs. With a "
           f"core per primary and the queues spread evenly, each primary runs its own queues' "
           f"lifecycles at a lone primary's cost, and each other primary adds only its idle load: "
           f"N primaries sustain about N x 10^6 / ({lone['cpu_us']:.0f} + (N - 1) x {y:.1f}) "
           f"lifecycles/s: 1 primary "
           f"{cap1:.0f} (the lone one's), **3 primaries {cap3:.0f}, x{cap3 / cap1:.2f}**, "
           f"{capn}: linear in the primaries, each adding a queue's worth. The same one-queue "
           f"run with "
           f"plain `PUBLISH` (what stratq did before; the driver's `--publish PUBLISH`): Redis "
           f"Cluster carries every `PUBLISH` to every node, each lifecycle's events arrived "
           f"{plain['bus']:.0f} times on the other nodes, a `PUBLISH` cost its sender "
           f"{plain['publish_us']:.2f} µs, a lifecycle cost its own primary {xp:.0f} µs and each "
           f"other {yp:.1f} µs; each primary past the first added about {per_node_p:.0f} µs "
           f"(its sender's share, ({xp:.0f} - {lone['cpu_us']:.0f}) / 2, and its own {yp:.1f}), so "
           f"N primaries sustained N x 10^6 / ({lone['cpu_us']:.0f} + (N - 1) x "
           f"{per_node_p:.0f}): {capn_p}, bounded near {1e6 / per_node_p:.0f} lifecycles/s "
           f"however many. The contended {CLUSTER_QUEUES}-queue run cannot show either: its 3 "
           f"servers and 3 drivers share {m['nproc']} cores, so its per-core figure also pays for "
           f"preemption (a command's time, measured on the wall clock, grows with it: "
           f"{three['cmd_us']:.0f} µs in commands per lifecycle against {one['cmd_us']:.0f})")
    calls = sorted(best["calls"].items(), key=lambda kv: -kv[1])
    breakdown = "\n".join(f"{k:<22} {v / best['window_lifecycles']:7.3f}" for k, v in calls)
    print()
    print(f"stratq bench-protocol: {m['nproc']} cores ({m['cpu']}), redis {m['redis']}, "
          f"kernel {m['kernel']}")
    print("\nsingle Redis, one driver:")
    print(text(srows))
    print(f"\nRedis Cluster ({CLUSTER_QUEUES} queues: {CLUSTER_QUEUES} drivers x "
          f"{CLUSTER_THREADS} threads; 1 queue: 1 driver x {CLUSTER_ONE_THREADS} threads):")
    print(text(crows))
    print("\n" + scaling)
    print("\n" + why.replace("**", ""))
    print(f"\ncommands per lifecycle by command ({best['threads']} threads):\n{breakdown}")
    print(f"\n(total run {elapsed:.0f} s; written to {DOC.relative_to(ROOT)})")

    doc = f"""# The protocol alone (`make bench-protocol`)

Written by `make bench-protocol` (`bench/protocol.py`); overwritten on each run.
Full no-op job lifecycles driven through stratq's Redis protocol with no Python
and no sandbox: what one Redis core sustains, and how it scales from 1 to 3
Redis Cluster primaries. [scaling.md](scaling.md#capacity-of-one-redis) turns
these figures into a capacity plan.

Run {m['date']}, stratq {m['commit']}, total {elapsed:.0f} s, on {m['nproc']} cores
({m['cpu']}), redis-server {m['redis']}, kernel {m['kernel']}; load average {m['load']} when
it started (anything else running shares the cores).

## Single Redis

{md(srows)}

At {best['threads']} threads: **{best['rate']:.0f} lifecycles/s** on this machine, where the
driver and Redis share {m['nproc']} cores; **{best['per_core']:.0f} lifecycles per Redis
CPU-second**, what one core given to Redis sustains; **{best['cmds']:.1f} Redis commands per
lifecycle**. Each figure comes with every enqueued job checked: the driver exits 1 when
a job is lost or an enqueue or complete was not recorded.

Commands per lifecycle by command ({best['threads']} threads; the commands a script runs count
each, as `INFO commandstats` counts them):

```
{breakdown}
```

## 1 and 3 Redis Cluster primaries

{md(crows)}

{scaling}.

{why}.

The {CLUSTER_QUEUES}-queue runs offer the same load to 1 and to 3 primaries:
{CLUSTER_QUEUES} queues (`{'`, `'.join(three['queues'])}`), whose names hash onto the three thirds
of the slots, one driver process per queue with {CLUSTER_THREADS} threads, given the cluster's
seeds. With 1 primary all three queues live on it; with 3, each on its own. The 1-queue run
drives `{alone['queues'][0]}` alone with {CLUSTER_ONE_THREADS} threads, with `SPUBLISH` as
stratq does on a cluster, then with plain `PUBLISH` for comparison. A queue's keys share its
hash tag, so one queue is never spread over primaries: more primaries help only as many queues
as there are.

## How it was measured

- **Driver** (`bench/protocol_load.c`, `build/bench/protocol_load`): N threads, each with its
  own connection (`queue_sync_connect`), each looping over the API's side, `enqueue.lua` built
  by `queue_build_enqueue` for a new id (`util_new_id`) and the spec the API stores for a
  small job, then the worker's: `jobq_take` (`BLMOVE`), `jobq_start`, `jobq_complete` with a
  succeeded outcome (result `null`, empty output, a usage object). Once a second per thread a
  heartbeat (`jobq_heartbeat`, a busy worker's pace, which adds the counts to the stats hash)
  and the API's submitted count (`count.lua`); the worker's housekeeping, `jobq_promote` once a
  second and `jobq_reap` once per heartbeat interval (5 s), which trims the listing indexes.
  A thread enqueues before it takes, so `BLMOVE` never waits; the threads share the queue and
  take one another's jobs. Latency is one loop (enqueue to complete recorded, 4 round trips).
- **Checks** at the end of every run: every enqueue created a job and every complete recorded
  one (`1`), as many completes as enqueues, the queue and every processing list empty, the
  stats hash's `completed:succeeded` grown by the number of lifecycles, and a sample of ~2,000
  ids spread over the run reading `succeeded`.
- **Window**: lifecycles, CPU and commands are read from `INFO` from {WARMUP_S} s after the
  drivers start to 1 s before they stop, leaving out connecting, `SCRIPT LOAD` and the end
  checks. Lifecycles there are `BLMOVE` calls (one each); Redis CPU is `used_cpu_user +
  used_cpu_sys`; commands are all `commandstats` calls but the bench's own `INFO`s. The
  lifecycles/s column is the drivers' own count over their whole run.
- **Servers**: `redis-server --save '' --appendonly no` on loopback; the cluster nodes the
  same with `--cluster-enabled yes`, slots split evenly with `CLUSTER ADDSLOTSRANGE`, no
  replicas. The driver runs the release build (`-O2`).
- **Shared cores**: Redis and the driver share {m['nproc']} cores, and the 3-primary run puts 3
  servers and 3 drivers on them, so raw lifecycles/s is bounded by the machine, not by Redis.
  Lifecycles per Redis CPU-second is the capacity figure: a primary with a core of its own
  runs about that many lifecycles per second (Redis runs commands on one thread).
"""
    DOC.write_text(doc)


def main():
    if not LOAD.exists():
        raise SystemExit(f"bench-protocol: {LOAD} is missing; run make build/bench/protocol_load")
    t_start = time.monotonic()
    arm_deadline(DEADLINE_S)
    tmp = tempfile.mkdtemp(prefix="stratq-bench-protocol.")
    try:
        m = machine()
        single = run_single(tmp)
        clusters = [run_cluster(tmp, 1), run_cluster(tmp, 3)]
        signal.alarm(0)
        report(single, clusters, m, time.monotonic() - t_start)
        return 0
    except BenchError as e:
        log_failure(e, tmp, log)
        return 1
    finally:
        signal.alarm(0)
        stop(list(reversed(STARTED)))
        subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    sys.exit(main())
