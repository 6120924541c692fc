"""The worker scaling guide's dev commands against the real stack: up,
ps, scale (script and manual), a SIGKILLed worker, a restarted cache, the
monitor, redis-cli LLEN, logs -f, and a job's limits inside the container's.

The tests share one stack (conftest.compose) and run in file order; each
starts by bringing the worker count to what it needs."""

import json
import random
import re
import subprocess
import threading
import time

import pytest

from conftest import REPO, docker, inspect, wait_for

SLEEP_JOB = "import time\n\ndef run(ctx):\n    time.sleep(ctx.params['s'])\n    return ctx.params['n']\n"
GIB = 1024**3


def scale_to(compose, n):
    """The guide's manual command; returns the n healthy worker ids."""
    compose.run("up", "-d", "--scale", f"worker={n}")
    return compose.wait_healthy("worker", n, timeout=120)


def container_of(compose, worker_id):
    """The worker container whose host name (its short id, in the worker id
    '<hostname>-<pid>-<rand>') ran a job."""
    host = worker_id.split("-")[0]
    for cid in compose.ids("worker"):
        if cid.startswith(host):
            return cid
    return None


def events(compose, since, until, service="worker"):
    """The engine's events for the project's containers of ``service``
    between two Unix times."""
    r = docker("events", "--since", str(since), "--until", str(until), "--format", "{{json .}}",
               "--filter", "type=container",
               "--filter", f"label=com.docker.compose.project={compose.project}",
               "--filter", f"label=com.docker.compose.service={service}")
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


class Feeder(threading.Thread):
    """Submits jobs at a steady pace until stopped; keeps the ids the API
    acknowledged (201) and counts what it refused or could not reach."""

    def __init__(self, api, spec_of, pace):
        super().__init__(daemon=True)
        self.api, self.spec_of, self.pace = api, spec_of, pace
        self.acked, self.refused = [], 0
        self.stop = threading.Event()

    def run(self):
        n = 0
        while not self.stop.is_set():
            spec = self.spec_of(n)
            try:
                status, body = self.api.request("POST", "/v1/jobs", spec, timeout=10)
            except OSError:
                status, body = None, None
            if status == 201:
                self.acked.append((body["id"], spec))
            else:
                self.refused += 1
            n += 1
            self.stop.wait(self.pace)

    def finish(self):
        self.stop.set()
        self.join(30)
        assert not self.is_alive()


def test_up_starts_the_guides_services_with_their_limits(compose, api):
    # conftest ran `docker-compose -f config/dev/docker-compose.yaml up -d`
    # and waited for every healthcheck.
    assert len(compose.healthy("cache", 1)) == 1
    assert len(compose.healthy("api", 1)) == 1
    workers = compose.healthy("worker", 3)
    assert workers, [inspect(c)["State"] for c in compose.ids("worker")]
    for cid in workers:
        info = inspect(cid)
        host = info["HostConfig"]
        assert host["Memory"] == 1 * GIB, host["Memory"]
        assert host["NanoCpus"] == 1_000_000_000, host["NanoCpus"]
        assert host["PidsLimit"] == 512, host["PidsLimit"]
        assert host["ReadonlyRootfs"] is True
        assert host["CapDrop"] == ["ALL"], host["CapDrop"]
        assert "no-new-privileges:true" in host["SecurityOpt"], host["SecurityOpt"]
        assert info["Config"]["User"] == "10001:10001", info["Config"]["User"]
        assert info["Config"]["Image"] == "stratq:dev"
    [cache] = compose.ids("cache")
    assert inspect(cache)["Config"]["Image"] == "stratq-redis:dev"
    # A job through the published port comes back succeeded.
    job = api.wait_job(api.submit({"code": "def run(ctx):\n    return {'answer': 6 * 7}\n"}))
    assert job["status"] == "succeeded" and job["result"] == {"answer": 42}, job
    assert container_of(compose, job["worker"]) in workers, job["worker"]


def test_ps_worker_lists_the_replicas(compose):
    scale_to(compose, 3)
    r = compose.run("ps", "worker")
    rows = [line for line in r.stdout.splitlines() if re.search(r"_worker_\d+\s", line)]
    assert len(rows) == 3, r.stdout
    assert all("Up" in row and "(healthy)" in row for row in rows), r.stdout


def test_scale_script_while_jobs_run_loses_and_repeats_nothing(compose, api):
    """scripts/scale-workers.sh dev 5, then dev 2, with jobs of 0.5-2 s
    running: each succeeds exactly once, and the stopped workers drain within
    the grace period (SIGTERM, exit 0, never SIGKILL)."""
    scale_to(compose, 3)
    rng = random.Random(15)
    feeder = Feeder(api, lambda n: {"code": SLEEP_JOB, "params": {"s": round(rng.uniform(0.5, 2.0), 2), "n": n}},
                    pace=0.25)
    t0 = int(time.time())
    feeder.start()
    try:
        wait_for(lambda: len(feeder.acked) >= 8, 30, "the first jobs to be submitted")
        up = subprocess.run(["./scripts/scale-workers.sh", "dev", "5"], cwd=REPO, env=compose.env,
                            capture_output=True, text=True, timeout=300)
        assert up.returncode == 0, up.stdout + up.stderr
        compose.wait_healthy("worker", 5)
        # Jobs are running on the workers that are about to stop.
        wait_for(lambda: sum(1 for w in api.get("/v1/workers")[1]["workers"] if w.get("state") == "busy") >= 3,
                 30, "at least 3 busy workers before scaling down")
        t_down = time.time()
        down = subprocess.run(["./scripts/scale-workers.sh", "dev", "2"], cwd=REPO, env=compose.env,
                              capture_output=True, text=True, timeout=300)
        down_s = time.time() - t_down
        assert down.returncode == 0, down.stdout + down.stderr
        assert len(compose.running("worker")) == 2
    finally:
        feeder.finish()
    t1 = int(time.time()) + 1
    assert feeder.refused == 0, f"{feeder.refused} submissions refused"

    ran_on = set()
    for job_id, spec in feeder.acked:
        job = api.wait_job(job_id, timeout=120)
        assert job["status"] == "succeeded", job
        assert job["result"] == spec["params"]["n"], job
        # Exactly once: one attempt, by one recorded worker.
        assert job["attempts"] == 1, job
        assert job["worker"], job
        ran_on.add(job["worker"])
    # The two added workers took jobs too.
    assert len({w.split("-")[0] for w in ran_on}) >= 4, ran_on

    # The three workers scale-down stopped got SIGTERM, drained and exited 0
    # within the 40 s grace period; no SIGKILL.
    evs = events(compose, t0, t1)
    kills = [e for e in evs if e["Action"] == "kill"]
    dies = {e["id"]: e for e in evs if e["Action"] == "die"}
    assert not [e for e in kills if e["Actor"]["Attributes"].get("signal") == "9"], kills
    stopped = {e["id"] for e in kills if e["Actor"]["Attributes"].get("signal") == "15"}
    assert len(stopped) == 3, kills
    for cid in stopped:
        assert cid in dies, f"worker {cid[:12]} got SIGTERM but never exited"
        assert dies[cid]["Actor"]["Attributes"]["exitCode"] == "0", dies[cid]
        term = next(e for e in kills if e["id"] == cid)
        assert (dies[cid]["timeNano"] - term["timeNano"]) / 1e9 < 40, (term, dies[cid])
    assert down_s < 45, down_s


def test_manual_scale_commands_give_the_same_counts(compose):
    scale_to(compose, 5)
    assert len(compose.running("worker")) == 5
    scale_to(compose, 2)
    assert len(compose.running("worker")) == 2
    rows = [line for line in compose.run("ps", "worker").stdout.splitlines() if "_worker_" in line]
    assert len(rows) == 2, rows


def test_a_sigkilled_busy_worker_s_job_is_requeued_and_succeeds_elsewhere(compose, api):
    scale_to(compose, 3)
    job_id = api.submit({"code": SLEEP_JOB, "params": {"s": 4, "n": 7}})
    first = wait_for(lambda: (lambda j: j if j["status"] == "running" else None)(api.job(job_id)), 30,
                     "the job to start")
    victim = container_of(compose, first["worker"])
    assert victim, first
    docker("kill", "-s", "KILL", victim)
    job = api.wait_job(job_id, timeout=120)
    assert job["status"] == "succeeded" and job["result"] == 7, job
    assert job["attempts"] == 2, job
    assert job["worker"] != first["worker"], job
    assert inspect(victim)["State"]["ExitCode"] == 137
    # `docker kill` counts as a manual stop, which the restart policy
    # respects: `up -d` brings the replica back.
    scale_to(compose, 3)


def test_cache_restart_under_load_loses_nothing_acknowledged(compose, api):
    scale_to(compose, 2)
    feeder = Feeder(api, lambda n: {"code": "def run(ctx):\n    return ctx.params['n']\n", "params": {"n": n}},
                    pace=0.05)
    feeder.start()
    try:
        wait_for(lambda: len(feeder.acked) >= 20, 30, "jobs submitted before the restart")
        before = len(feeder.acked)
        compose.run("restart", "cache")
        compose.wait_healthy("cache", 1)
        wait_for(lambda: len(feeder.acked) >= before + 20, 60, "submissions to be acknowledged again after the restart")
    finally:
        feeder.finish()
    for job_id, spec in feeder.acked:
        job = api.wait_job(job_id, timeout=120)
        assert job["status"] == "succeeded" and job["result"] == spec["params"]["n"], job
    compose.wait_healthy("worker", 2)
    compose.wait_healthy("api", 1)


def test_monitor_llen_and_logs_with_the_guides_commands(compose, api):
    scale_to(compose, 2)
    # Two jobs hold both workers until they are cancelled below (not for a
    # time, which a slow `docker stats` could outlast); four more wait.
    busy = [api.submit({"code": SLEEP_JOB, "params": {"s": 600, "n": i}, "timeout_s": 900})
            for i in range(2)]
    wait_for(lambda: all(api.job(j)["status"] == "running" for j in busy), 30, "both workers busy")
    waiting = [api.submit({"code": SLEEP_JOB, "params": {"s": 0, "n": i}}) for i in range(4)]
    llen = subprocess.run(["sh", "-c", "docker exec $(docker-compose -f config/dev/docker-compose.yaml ps -q cache) "
                           "redis-cli LLEN python_execution_queue"], cwd=REPO, env=compose.env,
                          capture_output=True, text=True, timeout=60)
    assert llen.returncode == 0, llen.stderr
    assert llen.stdout.strip() == "4", llen.stdout

    mon = subprocess.run(["./scripts/monitor-workers.sh", "dev", "--once"], cwd=REPO, env=compose.env,
                         capture_output=True, text=True, timeout=120)
    assert mon.returncode == 0, mon.stdout + mon.stderr
    out = mon.stdout
    assert re.search(r"[Ww]orkers?\b.*\b2\b", out), out
    assert re.search(r"\b4\b", out), out  # the pending count
    for j in busy:
        status, body = api.request("DELETE", f"/v1/jobs/{j}")
        assert status == 202, (status, body)

    # `logs -f worker` follows the workers' JSON lines: the next job's
    # "job finished" line shows up. (docker-compose 1.29 is Python: into a
    # pipe rather than a terminal it writes unbuffered only when told.)
    logs = subprocess.Popen(["docker-compose", "-f", "config/dev/docker-compose.yaml", "logs", "-f", "--tail", "20",
                             "worker"], cwd=REPO, env=dict(compose.env, PYTHONUNBUFFERED="1"), stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    found, seen = [], []
    try:
        marker = api.submit({"code": SLEEP_JOB, "params": {"s": 0, "n": 99}})

        def reader():
            for line in logs.stdout:
                seen.append(line)
                # "worker_2  | {...}", coloured on a terminal (and by 1.29
                # even into a pipe).
                _, _, payload = re.sub(r"\x1b\[[0-9;]*m", "", line).partition("| ")
                try:
                    rec = json.loads(payload)
                except ValueError:
                    continue
                if rec.get("id") == marker and rec.get("msg") == "job finished":
                    found.append(rec)
                    return

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        wait_for(lambda: found, 60, lambda: f"the marker job's 'job finished' line in `logs -f worker` "
                 f"(last lines: {seen[-5:]})")
        assert found[0]["status"] == "succeeded" and found[0]["component"] == "worker", found
    finally:
        logs.terminate()
        logs.wait(30)
    for j in busy:
        assert api.wait_job(j)["status"] == "cancelled"
    for j in waiting:
        assert api.wait_job(j)["status"] == "succeeded"


def test_a_job_over_its_memory_ends_memory_exceeded_and_the_container_lives(compose, api):
    workers = scale_to(compose, 2)
    restarts = {c: inspect(c)["RestartCount"] for c in workers}
    hog = "def run(ctx):\n    hog = []\n    while True:\n        hog.append(bytearray(64 * 1024 * 1024))\n"
    job = api.wait_job(api.submit({"code": hog, "memory_mb": 700}), timeout=120)
    assert job["status"] == "memory_exceeded", job
    for cid in workers:
        state = inspect(cid)
        assert state["State"]["OOMKilled"] is False, state["State"]
        assert state["State"]["Running"] and state["RestartCount"] == restarts[cid], state["State"]
    after = api.wait_job(api.submit({"code": "def run(ctx):\n    return 1\n"}))
    assert after["status"] == "succeeded", after


def test_a_fork_bomb_is_bounded_and_the_worker_carries_on(compose, api):
    workers = scale_to(compose, 2)
    bomb = (REPO / "tests/sandbox/fork_bomb.py").read_text()
    job = api.wait_job(api.submit({"code": bomb, "params": {"proc_name": "sq-ct-bomb"}, "timeout_s": 10}),
                       timeout=120)
    assert job["status"] == "succeeded" and job["result"]["blocked"] is True, job
    # None of its children outlive it, in any container of the project.
    def no_leftovers():
        for cid in workers:
            top = docker("top", cid, "-eo", "pid,comm").stdout
            if "sq-ct-bomb" in top:
                return False
        return True

    wait_for(no_leftovers, 30, "the fork bomb's children to be gone")
    for cid in workers:
        assert inspect(cid)["State"]["Running"], cid
    after = [api.submit({"code": "def run(ctx):\n    return 2\n"}) for _ in range(4)]
    for j in after:
        assert api.wait_job(j)["status"] == "succeeded"
