"""stratq against a real Redis Cluster (STRATQ_REDIS_CLUSTER_NODES): three
primaries started by tests/integration/cluster.py, the API and workers
given one or all of them as seeds, following MOVED, ASK and TRYAGAIN.

Every key of a queue lives in the queue's slot: the queue list ``Q``
and every ``stratq:{Q}:...`` key (docs/protocol.md, "Keys").
"""

import os
import signal
import threading

import pytest

from cluster import REDIS_CLI, Cluster, key_slot
from conftest import (
    JOB_TIMEOUT,
    START_TIMEOUT,
    Api,
    ApiProc,
    Stack,
    WorkerProc,
    free_port,
    wait_for,
)

pytestmark = pytest.mark.skipif(not os.access(REDIS_CLI, os.X_OK), reason=f"no {REDIS_CLI}")

RETURN_ID = "def run(ctx):\n    return ctx.params['n']\n"
SLEEPY = "import time\n\ndef run(ctx):\n    time.sleep(ctx.params['s'])\n    return ctx.params['n']\n"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        c.start()
        yield c
    finally:
        c.stop()


class ClusterStack(Stack):
    """Starts an API and workers on one queue of the cluster."""

    def __init__(self, tmp_path, redis_server, cluster):
        super().__init__(tmp_path, redis_server)
        self.cluster = cluster

    def args(self, queue, prefix, seeds):
        # The URL's host is not used with seeds (its password would be):
        # a port nothing listens on shows it.
        return ["--redis-url", f"redis://127.0.0.1:{free_port()}",
                "--redis-cluster-nodes", seeds or self.cluster.seeds,
                "--queue", queue, "--prefix", prefix if prefix is not None else "stratq"]

    def start_api(self, queue, prefix=None, seeds=None):
        port = free_port()
        proc = self.spawn("api", ["api", "--port", str(port), *self.args(queue, prefix, seeds)],
                          None, ApiProc)
        proc.port = port
        proc.url = f"http://127.0.0.1:{port}"
        proc.client = Api(proc.url)

        def ready():
            assert proc.alive(), f"stratq api exited\n{proc.describe()}"
            try:
                st, _ = proc.client.get("/readyz", timeout=2)
            except OSError:
                return False
            return st == 200

        wait_for(ready, START_TIMEOUT, lambda: f"GET /readyz -> 200 from {proc.describe()}")
        return proc

    def start_worker(self, api, queue, prefix=None, seeds=None):
        proc = self.spawn("worker", ["worker", *self.args(queue, prefix, seeds)], None, WorkerProc)

        def registered():
            assert proc.alive(), f"stratq worker exited\n{proc.describe()}"
            st, body = api.client.get("/v1/workers")
            ids = [w["id"] for w in body.get("workers", []) if w.get("pid") == proc.pid] if st == 200 else []
            return ids[0] if ids else None

        proc.id = wait_for(registered, START_TIMEOUT, lambda: f"worker {proc.pid} to register\n{proc.describe()}")
        return proc


@pytest.fixture
def cstack(tmp_path, redis_server, cluster, request):
    s = ClusterStack(tmp_path, redis_server, cluster)
    request.node._stratq_stack = s
    yield s
    problems = s.teardown()
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


def run_jobs(api, n, code=RETURN_ID, **params):
    ids = [api.client.submit({"code": code, "params": {"n": i, **params}}) for i in range(n)]
    return ids


def check_done(api, ids, timeout=JOB_TIMEOUT):
    for i, job_id in enumerate(ids):
        job = api.client.wait_job(job_id, timeout)
        assert job["status"] == "succeeded", job
        assert job["result"] == i, job
        assert job["attempts"] == 1, f"job ran more than once: {job}"


def followed(proc, kind):
    return any(line.get("msg") == "following a Redis Cluster redirect" and line.get("redirect") == kind
               for line in proc.log_lines_json())


def test_seed_that_does_not_own_the_slot_redirects_with_moved(cstack, cluster):
    """The only seed given owns none of the queue's slot: the API's and the
    worker's first keyed calls come back MOVED and are followed."""
    seed, home = cluster.nodes[0], cluster.nodes[1]
    queue = cluster.name_on(home, "moved")
    api = cstack.start_api(queue, seeds=seed.addr)
    cstack.start_worker(api, queue, seeds=seed.addr)
    check_done(api, run_jobs(api, 3))
    assert followed(api, "MOVED") and all(followed(p, "MOVED") for p in cstack.procs)
    # The keys are where the slot is.
    assert home.cmd("EXISTS", "stratq:{%s}:workers" % queue) == 1
    assert seed.cmd("DBSIZE") == 0 or seed.cmd("EXISTS", "stratq:{%s}:workers" % queue) == 0


def test_long_poll_waits_through_the_cluster_bus(cstack, cluster):
    """?wait= is woken by the events channel: the API subscribes on the
    first seed, the script PUBLISHes on the slot's node."""
    seed, home = cluster.nodes[0], cluster.nodes[2]
    queue = cluster.name_on(home, "wait")
    api = cstack.start_api(queue, seeds=seed.addr)
    cstack.start_worker(api, queue)
    st, body = api.client.post("/v1/jobs?wait=30", {"code": RETURN_ID, "params": {"n": 5}})
    assert st in (200, 201) and body["status"] == "succeeded" and body["result"] == 5, body


def test_slot_moved_while_jobs_run(cstack, cluster):
    """The queue's slot moves to another primary while jobs wait and run:
    the API and the worker follow MOVED and every job completes once."""
    src = cluster.nodes[0]
    dst = cluster.nodes[1]
    queue = cluster.name_on(src, "mid")
    slot = key_slot(queue)
    api = cstack.start_api(queue)
    worker = cstack.start_worker(api, queue)
    ids = run_jobs(api, 8, code=SLEEPY, s=0.2)
    api.client.wait_status(ids[0], {"running", "succeeded"})
    cluster.move_slot(slot, src, dst)
    ids += run_jobs(api, 4, code=SLEEPY, s=0.0)
    for i, job_id in enumerate(ids):
        job = api.client.wait_job(job_id)
        assert job["status"] == "succeeded" and job["attempts"] == 1, job
    assert followed(worker, "MOVED") and followed(api, "MOVED")
    assert src.cmd("CLUSTER", "COUNTKEYSINSLOT", slot) == 0


def test_slot_held_mid_migration_asks_and_tries_again(cstack, cluster):
    """The slot is half-way to another node (IMPORTING/MIGRATING, the done
    jobs' keys moved, the queue's not): reading a moved job is answered
    ASK and read from the target; a submit, whose keys are on both sides,
    is answered TRYAGAIN and retried until the migration ends; nothing is
    lost and every job runs once."""
    src = cluster.nodes[1]
    dst = cluster.nodes[2]
    queue = cluster.name_on(src, "ask")
    slot = key_slot(queue)
    api = cstack.start_api(queue)
    cstack.start_worker(api, queue)
    first = run_jobs(api, 2)
    check_done(api, first)
    cluster.begin_migration(slot, src, dst)
    ended = threading.Event()
    try:
        moved = [k for k in src.cmd("CLUSTER", "GETKEYSINSLOT", slot, 1000) if ":job:" in k]
        cluster.migrate_keys(slot, src, dst, keys=moved)
        assert all(k.rsplit(":job:", 1)[1] not in first for k in
                   src.cmd("CLUSTER", "GETKEYSINSLOT", slot, 1000) if ":job:" in k)
        for i, job_id in enumerate(first):
            job = api.client.job(job_id)  # ASK: the hash is on dst now
            assert job["status"] == "succeeded" and job["result"] == i, job
        # End the migration while the submit is being retried.
        timer = threading.Timer(0.5, lambda: (cluster.end_migration(slot, src, dst), ended.set()))
        timer.start()
        try:
            later = run_jobs(api, 1)
        finally:
            timer.join()
        assert ended.is_set()
    finally:
        if not ended.is_set():
            cluster.end_migration(slot, src, dst)
    later += run_jobs(api, 2)[1:]
    check_done(api, later)
    assert src.cmd("CLUSTER", "COUNTKEYSINSLOT", slot) == 0


def test_two_queues_on_different_primaries(cstack, cluster):
    """Scale-out is many queues: two queues whose slots are on different
    primaries, each with its own API and worker, each running its jobs."""
    qa = cluster.name_on(cluster.nodes[0], "left")
    qb = cluster.name_on(cluster.nodes[2], "right")
    apis = []
    for q in (qa, qb):
        api = cstack.start_api(q)
        cstack.start_worker(api, q)
        apis.append(api)
    ids = [run_jobs(api, 3) for api in apis]
    for api, batch in zip(apis, ids):
        check_done(api, batch)
    assert cluster.nodes[0].cmd("EXISTS", "stratq:{%s}:workers" % qa) == 1
    assert cluster.nodes[2].cmd("EXISTS", "stratq:{%s}:workers" % qb) == 1


def test_default_prefix_runs_jobs_through_the_cluster(cstack, cluster):
    """With the hash-tagged layout the default prefix works too."""
    queue = cluster.name_on(cluster.nodes[1], "plain")
    api = cstack.start_api(queue, prefix="stratq", seeds=cluster.nodes[0].addr)
    cstack.start_worker(api, queue, prefix="stratq", seeds=cluster.nodes[0].addr)
    check_done(api, run_jobs(api, 3))


def test_default_queue_and_prefix_through_a_moved_slot(cstack, cluster):
    """python_execution_queue with the default prefix, its slot moved while
    jobs run."""
    queue = "python_execution_queue"
    slot = key_slot(queue)
    src = cluster.owner(slot)
    dst = next(n for n in cluster.nodes if n is not src)
    api = cstack.start_api(queue, prefix="stratq")
    cstack.start_worker(api, queue, prefix="stratq")
    ids = run_jobs(api, 6, code=SLEEPY, s=0.2)
    cluster.move_slot(slot, src, dst)
    check_done(api, ids)


def test_primary_restart_loses_nothing(cstack, cluster):
    """The primary that owns the queue's slot stops (SIGTERM) and comes
    back on its port with its AOF: the API and the worker reconnect, and
    jobs submitted before, during and after all complete once."""
    node = cluster.nodes[2]
    queue = cluster.name_on(node, "restart")
    api = cstack.start_api(queue)
    cstack.start_worker(api, queue)
    ids = run_jobs(api, 4, code=SLEEPY, s=0.2)
    api.client.wait_status(ids[0], {"running", "succeeded"})
    node.stop(signal.SIGTERM)
    node.start()
    cluster.wait_ok()
    wait_for(api.client.healthy, START_TIMEOUT, "the API to reconnect")
    ids += run_jobs(api, 2)
    for job_id in ids:
        job = api.client.wait_job(job_id)
        assert job["status"] == "succeeded" and job["attempts"] == 1, job


def test_events_subscription_moves_to_the_next_seed(cstack, cluster):
    """The node the API subscribed on (the first seed) stops: the
    subscription is made again on the next seed, and ?wait= is still woken
    by the jobs' events."""
    gone, home = cluster.nodes[0], cluster.nodes[1]
    queue = cluster.name_on(home, "sub")
    api = cstack.start_api(queue, seeds=cluster.seeds)
    cstack.start_worker(api, queue)
    gone.stop(signal.SIGTERM)
    try:
        wait_for(lambda: any(line.get("msg") == "lost the events subscription, reconnecting"
                             for line in api.log_lines_json()),
                 START_TIMEOUT, lambda: f"the API to lose its subscription\n{api.describe()}")
        wait_for(lambda: api.client.get("/readyz")[0] == 200, START_TIMEOUT,
                 lambda: f"the API to subscribe again\n{api.describe()}")
        st, body = api.client.post("/v1/jobs?wait=30", {"code": RETURN_ID, "params": {"n": 9}})
        assert st in (200, 201) and body["status"] == "succeeded" and body["result"] == 9, body
    finally:
        gone.start()
        cluster.wait_ok()


def test_plain_redis_py_producer_through_the_cluster(cstack, cluster):
    """docs/protocol.md's producer, as another backend writes it: redis-py's
    RedisCluster, plain commands in the documented order (no stratq code),
    on a queue whose slot is not on the first seed; the result is read back
    with HGET and the events channel is heard on another node."""
    import json
    import time
    import uuid

    from redis.cluster import ClusterNode, RedisCluster

    home = cluster.nodes[2]
    queue = cluster.name_on(home, "plain")
    api = cstack.start_api(queue)
    cstack.start_worker(api, queue)
    rc = RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", n.port) for n in cluster.nodes],
                      decode_responses=True)
    sub = cluster.nodes[0].client().pubsub(ignore_subscribe_messages=True)
    base = "stratq:{%s}" % queue
    try:
        sub.subscribe(f"{base}:events")
        job_id = uuid.uuid4().hex
        now = int(time.time() * 1000)
        spec = {"code": RETURN_ID, "params": {"n": 41}}
        rc.hset(f"{base}:job:{job_id}",
                mapping={"spec": json.dumps(spec), "status": "queued", "attempts": 0, "created_ms": now})
        rc.lpush(queue, job_id)
        rc.zadd(f"{base}:index:all", {job_id: now})
        wait_for(lambda: rc.hget(f"{base}:job:{job_id}", "status") == "succeeded", JOB_TIMEOUT,
                 lambda: f"the job to succeed: {rc.hgetall(f'{base}:job:{job_id}')}")
        assert json.loads(rc.hget(f"{base}:job:{job_id}", "result")) == 41
        seen = []

        def heard():
            m = sub.get_message(timeout=0.2)
            if m:
                seen.append(json.loads(m["data"]))
            return any(e.get("id") == job_id and e.get("status") == "succeeded" for e in seen)

        wait_for(heard, 10, lambda: f"the succeeded event on node 0's subscription: {seen}")
        # The API lists the job it did not create.
        st, body = api.client.get("/v1/jobs?status=succeeded")
        assert st == 200 and job_id in [j["id"] for j in body["jobs"]], body
    finally:
        sub.close()
        rc.close()


def test_cancel_reaches_the_busy_worker_through_the_cluster(cstack, cluster):
    """A running job's cancel request is published on its worker's control
    channel; the worker subscribed on a seed (any node hears every PUBLISH),
    not on the URL's host, which a cluster does not use."""
    home = cluster.nodes[1]
    queue = cluster.name_on(home, "cancel")
    api = cstack.start_api(queue)
    worker = cstack.start_worker(api, queue)
    job_id = api.client.submit({"code": SLEEPY, "params": {"s": 60, "n": 1}})
    api.client.wait_status(job_id, "running")
    st, body = api.client.request("DELETE", f"/v1/jobs/{job_id}")
    assert st == 202, body
    job = api.client.wait_job(job_id, 15)
    assert job["status"] == "cancelled", job
    assert not any(line.get("msg", "").startswith("cannot subscribe to the control channel")
                   for line in worker.log_lines_json()), worker.describe()
