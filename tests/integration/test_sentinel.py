"""stratq behind Redis Sentinel (issue 17): one primary, two replicas and
three sentinels on loopback (tests/integration/sentinel.py), the API and
workers given STRATQ_REDIS_SENTINELS and STRATQ_REDIS_SENTINEL_MASTER and a
Redis URL whose host nothing listens on (with Sentinel the host is not
used; its password is, for the data nodes).

The contract: the daemons ask the sentinels for the primary
(``SENTINEL get-master-addr-by-name``), follow ``+switch-master``, and on
READONLY or a lost connection ask again; the API answers 503 with
Retry-After while there is no primary and recovers by itself. With
STRATQ_REDIS_MIN_REPLICAS=N (1 by default with Sentinel) a submit is
acknowledged only after ``WAIT N`` saw N replicas take it (else 503, after
STRATQ_REDIS_WAIT_TIMEOUT_MS), and a worker confirms a completion the same
way before it takes its next job.

Every test has a Sentinel group of its own (about 2.5 s to start and
settle): a failover changes the topology.
"""

import json
import time
import urllib.error
import urllib.request

import pytest
import redis

import failover  # tests/chaos/failover.py: conftest puts tests/chaos on the path
from conftest import (
    JOB_TIMEOUT,
    PREFIX,
    QUEUE,
    START_TIMEOUT,
    STRATQ_BIN,
    Stack,
    WorkerProc,
    require_binary,
    serve_stack,
    wait_for,
)
from sentinel import FAILOVER_TIMEOUT, SentinelGroup

RETURN_N = "def run(ctx):\n    return ctx.params['n']\n"
SLEEPY = "import time\n\ndef run(ctx):\n    time.sleep(ctx.params['s'])\n    return ctx.params['n']\n"
UNKNOWN_MASTER_LINE = "no sentinel knows a primary named"


@pytest.fixture
def group(tmp_path, request):
    """A started group; parametrize indirectly for SentinelGroup's
    keyword arguments."""
    g = SentinelGroup(tmp_path / "sentinel", **getattr(request, "param", {}))
    g.start()
    yield g
    g.stop()


class SentinelStack(Stack):
    """Starts the API and workers pointed at a Sentinel group."""

    def __init__(self, tmp_path, redis_server, group):
        super().__init__(tmp_path, redis_server)
        self.group = group

    def env(self, master=None, env=None):
        return self.group.stratq_env(master, **(env or {}))

    def start_api(self, env=None, master=None, ready=True):
        """``ready``: wait for /readyz 200; else only for the API to answer
        HTTP at all."""
        return self.start_api_ready([], self.env(master, env), ready)

    def start_worker(self, api, env=None):
        proc = self.spawn("worker", ["worker"], self.env(None, env), WorkerProc)
        proc.id = self.wait_listed(proc, api)
        return proc


@pytest.fixture
def sstack(tmp_path, redis_server, group, request):
    yield from serve_stack(request, SentinelStack(tmp_path, redis_server, group))


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http(api, method, path, body=None, timeout=10):
    """(status, headers, parsed body): what Api.request leaves out, the
    headers (Retry-After)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(api.url + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"} if data else {})
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            status, headers, payload = resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        status, headers, payload = e.code, e.headers, e.read()
    try:
        parsed = json.loads(payload) if payload else None
    except ValueError:
        parsed = payload.decode(errors="replace")
    return status, headers, parsed


def readyz(api):
    try:
        return http(api, "GET", "/readyz", timeout=3)
    except OSError as e:
        return None, {}, repr(e)


def assert_unavailable(answer, what):
    status, headers, body = answer
    assert status == 503, f"{what}: {status} {body!r}"
    retry = headers.get("Retry-After")
    assert retry is not None and retry.isdigit() and int(retry) >= 1, \
        f"{what}: 503 without a Retry-After of whole seconds ({retry!r})"


def run_jobs(api, n, first=0):
    return [api.client.submit({"code": RETURN_N, "params": {"n": first + i}}) for i in range(n)]


def check_done(api, ids, first=0, timeout=JOB_TIMEOUT):
    jobs = []
    for i, job_id in enumerate(ids):
        job = api.client.wait_job(job_id, timeout)
        assert job["status"] == "succeeded" and job["result"] == first + i, job
        assert job["attempts"] == 1, f"job ran more than once: {job}"
        jobs.append(job)
    return jobs


def submit_until_acknowledged(api, job_id, spec, timeout=30):
    """POST the job under its own id until it is acknowledged (201, or 200
    when an earlier try was taken after all), passing over the 503s (with
    Retry-After) of a daemon that is still finding the new primary."""
    seen = []

    def acknowledged():
        try:
            answer = http(api, "POST", "/v1/jobs", {**spec, "id": job_id})
        except OSError as e:
            seen.append(repr(e))
            return False
        status, _, body = answer
        if status == 503:
            assert_unavailable(answer, f"POST /v1/jobs {job_id}")
        else:
            assert status in (200, 201), f"POST /v1/jobs {job_id} -> {status} {body!r}"
        seen.append(status)
        return status in (200, 201)

    wait_for(acknowledged, timeout, lambda: f"POST /v1/jobs {job_id} to be acknowledged; answers: {seen[-10:]}",
             interval=0.2)
    return job_id


def log_has(proc, text):
    return any(text in line for line in proc.log().splitlines())


# --------------------------------------------------------------------------
# The harness itself (no stratq): runs with any binary
# --------------------------------------------------------------------------


def test_harness_fails_over_a_killed_primary(group):
    """The group a failover test relies on: a key every replica took (WAIT)
    survives a SIGKILL of the primary; a former replica is promoted within
    FAILOVER_TIMEOUT, every sentinel names it, the other replica follows
    it, and the old node, back as a replica, gets the data."""
    first = group.primary()
    assert set(group.replicas()) == set(group.nodes) - {first}
    c = first.client()
    c.set("before", "kept")
    assert c.execute_command("WAIT", 2, 5000) == 2
    c.close()
    old = group.kill_primary()
    assert old is first and not old.alive()
    f = group.wait_failover()
    assert f.new is not old and f.new in group.nodes
    assert f.seconds < FAILOVER_TIMEOUT
    channels = [ch for _, _, ch, _ in f.events]
    assert channels.index("+odown") < channels.index("+switch-master"), f.timeline()
    assert f.new.client().get("before") == "kept"
    other = next(n for n in group.nodes if n not in (old, f.new))
    wait_for(lambda: other.link_up() and int(other.info().get("master_port", 0)) == f.new.port,
             START_TIMEOUT, f"{other.addr} to replicate from the new primary {f.new.addr}")
    group.restart_as_replica(old)
    assert old.role() == "slave" and old.client().get("before") == "kept"
    assert group.primary() is f.new


# --------------------------------------------------------------------------
# stratq through the sentinels
# --------------------------------------------------------------------------


def test_api_and_workers_find_the_primary(sstack, group):
    """The API and two workers, given only the sentinels, find the primary
    and run jobs; the jobs' records are on the primary (the URL's host, a
    port nothing listens on, is not used)."""
    api = sstack.start_api()
    workers = [sstack.start_worker(api) for _ in range(2)]
    ids = run_jobs(api, 8)
    jobs = check_done(api, ids)
    assert {j["worker"] for j in jobs} <= {w.id for w in workers}
    primary = group.client()
    try:
        assert all(primary.exists(f"{PREFIX}:job:{i}") for i in ids)
        assert primary.zscore(f"{PREFIX}:workers", workers[0].id) is not None
        assert primary.zscore(f"{PREFIX}:workers", workers[1].id) is not None
    finally:
        primary.close()


@pytest.mark.parametrize("group", [{"password": "s3cret-Pw"}], indirect=True, ids=["requirepass"])
def test_password_of_the_url_applies_to_the_data_nodes(sstack, group):
    """The data nodes have requirepass (the sentinels none): the URL's
    password, not its host, is what reaches them."""
    api = sstack.start_api()
    sstack.start_worker(api)
    check_done(api, run_jobs(api, 3))
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=group.primary().port).ping()


def test_follows_a_failover_without_restarts(sstack, group):
    """The primary is SIGKILLed while a job runs: the API answers /readyz
    503 with Retry-After while there is no primary, and 200 again once the
    sentinels have promoted a replica; the running job's completion lands
    on the new primary, once; the same API and workers (no restart) run
    new jobs there; the old node coming back as a replica changes nothing
    for them."""
    api = sstack.start_api()
    workers = [sstack.start_worker(api) for _ in range(2)]
    pids = {w.pid for w in workers}
    check_done(api, run_jobs(api, 4))
    busy = api.client.submit({"code": SLEEPY, "params": {"s": 2, "n": 99}})
    api.client.wait_status(busy, "running")

    def unready():
        answer = readyz(api)
        return answer if answer[0] == 503 else None

    old = group.kill_primary()
    down = wait_for(unready, 15, lambda: f"/readyz to answer 503 with the primary gone\n{api.describe()}",
                    interval=0.02)
    assert_unavailable(down, "/readyz without a primary")
    assert down[2].get("ready") is False and down[2].get("redis") is False, down
    f = group.wait_failover()
    wait_for(lambda: readyz(api)[0] == 200, 30,
             lambda: f"/readyz 200 after the switch to {f.new.addr} ({f.timeline()})\n{api.describe()}")

    job = api.client.wait_job(busy)
    assert job["status"] == "succeeded" and job["result"] == 99 and job["attempts"] == 1, job
    # WAIT 1 needs the other replica, which the sentinels point at the new
    # primary (+slave-reconf-sent).
    group.wait_replicas(f.new, 1)
    ids = run_jobs(api, 6, first=10)
    jobs = check_done(api, ids, first=10)
    assert {j["worker"] for j in jobs} <= {w.id for w in workers}
    assert all(w.alive() for w in workers) and {w.pid for w in workers} == pids
    assert api.alive()
    c = f.new.client()
    try:
        assert all(c.exists(f"{PREFIX}:job:{i}") for i in [busy, *ids])
    finally:
        c.close()

    group.restart_as_replica(old)
    check_done(api, run_jobs(api, 2, first=20), first=20)


def test_follows_a_demoted_primary(sstack, group):
    """SENTINEL FAILOVER demotes the live primary to a replica: it still
    answers, but writes get READONLY and blocked reads (a worker's BLMOVE)
    end with UNBLOCKED. The API and the workers ask the sentinels again,
    move to the new primary and run jobs there, with no restart."""
    api = sstack.start_api()
    workers = [sstack.start_worker(api) for _ in range(2)]
    check_done(api, run_jobs(api, 2))
    old = group.manual_failover()
    f = group.wait_failover()
    wait_for(old.link_up, START_TIMEOUT, f"the old primary {old.addr} to replicate from {f.new.addr}")
    with pytest.raises(redis.exceptions.ReadOnlyError):
        old.client().set("demoted", "1")
    group.wait_replicas(f.new, 2)
    ids = [submit_until_acknowledged(api, f"after-demotion-{i}", {"code": RETURN_N, "params": {"n": i}})
           for i in range(4)]
    jobs = check_done(api, ids)
    assert {j["worker"] for j in jobs} <= {w.id for w in workers}
    assert all(w.alive() for w in workers) and api.alive()
    c = f.new.client()
    try:
        assert all(c.exists(f"{PREFIX}:job:{i}") for i in ids)
        # Both workers heartbeat on the new primary.
        wait_for(lambda: all(c.zscore(f"{PREFIX}:workers", w.id) is not None for w in workers),
                 START_TIMEOUT, "both workers registered on the new primary")
    finally:
        c.close()


def test_unknown_master_name_is_one_clear_line(sstack, group):
    """A master name no sentinel monitors: the API and a worker each log a
    line saying so, naming it, within seconds (no hang), and /readyz
    answers 503 with Retry-After."""
    t0 = time.monotonic()
    api = sstack.start_api(master="nosuchprimary", ready=False)
    worker = sstack.spawn("worker", ["worker"], sstack.env("nosuchprimary"), WorkerProc)
    for proc in (api, worker):
        wait_for(lambda: log_has(proc, UNKNOWN_MASTER_LINE), 10,
                 lambda: f"{proc.kind} to log '{UNKNOWN_MASTER_LINE}'\n{proc.describe()}")
        line = next(ln for ln in proc.log().splitlines() if UNKNOWN_MASTER_LINE in ln)
        assert "nosuchprimary" in line, line
    assert time.monotonic() - t0 < 15
    answer = readyz(api)
    assert_unavailable(answer, "/readyz with an unknown master name")
    assert answer[2].get("ready") is False, answer
    assert api.alive()
    # Nothing was written anywhere.
    c = group.client()
    try:
        assert c.dbsize() == 0
    finally:
        c.close()


def test_acknowledged_only_once_a_replica_has_it(sstack, group):
    """STRATQ_REDIS_MIN_REPLICAS=1 (the default with Sentinel), WAIT
    timeout 500 ms. With no replica taking the primary's writes: a worker
    runs no job until a replica confirms its start (and takes no other
    until one confirms its completion), and a submit is answered 503 with
    Retry-After, never 201. With a replica back, the waiting job runs and submits are
    acknowledged again."""
    env = {"STRATQ_REDIS_WAIT_TIMEOUT_MS": "500"}
    api = sstack.start_api(env=env)
    worker = sstack.start_worker(api, env=env)
    check_done(api, run_jobs(api, 1))
    paused = group.cut_replication()
    primary = group.client()
    try:
        # Two jobs written as docs/protocol.md's producer does (no WAIT).
        for i in (1, 2):
            now = int(time.time() * 1000)
            spec = json.dumps({"code": RETURN_N, "params": {"n": i}})
            pipe = primary.pipeline(transaction=True)
            pipe.hset(f"{PREFIX}:job:held-{i}",
                      mapping={"spec": spec, "status": "queued", "attempts": 0, "created_ms": now})
            pipe.lpush(QUEUE, f"held-{i}")
            pipe.zadd(f"{PREFIX}:index:all", {f"held-{i}": now})
            pipe.execute()
            if i == 1:
                # The worker takes it and writes its start; no replica
                # confirms the start, so it does not run it.
                wait_for(lambda: primary.hget(f"{PREFIX}:job:held-1", "status") == "running",
                         JOB_TIMEOUT, lambda: f"held-1 to be started\n{worker.describe()}")
        # For three WAIT timeouts held-1 is not run (a failover now could
        # lose the start, and another worker would run it again) and held-2
        # waits in the queue.
        t_end = time.monotonic() + 1.5
        while time.monotonic() < t_end:
            assert primary.hget(f"{PREFIX}:job:held-1", "status") == "running", \
                f"the worker ran held-1 before a replica confirmed its start\n{worker.describe()}"
            assert primary.hget(f"{PREFIX}:job:held-2", "status") == "queued", \
                f"the worker took held-2 before a replica confirmed held-1\n{worker.describe()}"
            time.sleep(0.05)
        t0 = time.monotonic()
        answer = http(api, "POST", "/v1/jobs", {"code": RETURN_N, "params": {"n": 3}, "id": "refused-3"})
        elapsed = time.monotonic() - t0
        assert_unavailable(answer, "POST /v1/jobs with no replica")
        assert elapsed < 5, f"the refusal took {elapsed:.1f}s (WAIT timeout 0.5 s)"
    finally:
        for node in paused:
            node.resume()
        primary.close()
    group.wait_replicas(group.primary(), 1)
    for i in (1, 2):
        job = api.client.wait_job(f"held-{i}")
        assert job["status"] == "succeeded" and job["result"] == i and job["attempts"] == 1, job
    check_done(api, run_jobs(api, 2, first=5), first=5)
    assert worker.alive()


# --------------------------------------------------------------------------
# Part 4: nothing acknowledged is lost (tests/chaos/failover.py)
# --------------------------------------------------------------------------


@pytest.mark.parametrize("cut", [0.0, 1.0], ids=["sigkill", "replication-cut-then-sigkill"])
def test_failover_loses_nothing_acknowledged(tmp_path, cut):
    """tests/chaos/failover.py with STRATQ_REDIS_MIN_REPLICAS=1: 3 clients
    submit jobs steadily, the primary is SIGKILLed mid-run, and every
    acknowledged job succeeds, having run once (by the files the jobs
    leave). On loopback a plain SIGKILL seldom finds a write the replicas
    lack; the second run first cuts replication for a second (replicas
    paused, links dropped), so that only WAIT keeps what the primary took
    then from being acknowledged and lost: the submits of that second must
    be refused, and no job may run twice (a worker runs a job only once a
    replica has its start)."""
    require_binary()
    c = failover.run(binary=str(STRATQ_BIN), min_replicas=1, cut=cut, before=4.0, after=6.0,
                     workdir=tmp_path, verbose=False)
    table = failover.format_table(c)
    assert not c["violations"], "failover violations:\n" + "\n".join(c["violations"]) + "\n" + table
    assert c["acknowledged"] > 0 and c["acked_after_switch"] > 0, table
    assert c["lost"] == 0 and c["stuck"] == 0, table
    assert c["run_more_than_once"] <= c["reruns_allowed"], table
    assert c["failover_s"] is not None and c["failover_s"] < FAILOVER_TIMEOUT, table
