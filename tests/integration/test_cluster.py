"""stratq against a real Redis Cluster (STRATQ_REDIS_CLUSTER_NODES): three
primaries started by tests/integration/cluster.py, the API and workers
given one or all of them as seeds, following MOVED, ASK and TRYAGAIN.

Every key of a queue lives in the queue's slot: the queue list ``Q``
and every ``stratq:{Q}:...`` key (docs/protocol.md, "Keys"). So do its
pub/sub channels, which are sharded on a cluster: the scripts SPUBLISH,
and the API's events subscription and each worker's control channel
SSUBSCRIBE on the slot's owner, following it when the slot moves.
"""

import os
import signal
import threading

import pytest
import redis

from cluster import REDIS_CLI, Cluster, key_slot
from conftest import (
    JOB_TIMEOUT,
    START_TIMEOUT,
    Stack,
    Subscriber,
    WorkerProc,
    free_port,
    serve_stack,
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
        return self.start_api_ready(self.args(queue, prefix, seeds))

    def start_worker(self, api, queue, prefix=None, seeds=None):
        proc = self.spawn("worker", ["worker", *self.args(queue, prefix, seeds)], None, WorkerProc)
        proc.id = self.wait_listed(proc, api)
        return proc


@pytest.fixture
def cstack(tmp_path, redis_server, cluster, request):
    yield from serve_stack(request, ClusterStack(tmp_path, redis_server, cluster))


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


def shard_subscribers(node, channel):
    """SSUBSCRIBE subscribers of channel on node (0 when node answers MOVED:
    it does not own the channel's slot)."""
    try:
        reply = node.cmd("PUBSUB", "SHARDNUMSUB", channel)
    except redis.exceptions.ResponseError:
        return 0
    flat = [x for pair in reply for x in (pair if isinstance(pair, (list, tuple)) else [pair])]
    return int(flat[1]) if len(flat) > 1 else 0


def bus_messages(node, kind):
    """The cluster bus messages of a kind (publish, publishshard) node sent
    and received so far (CLUSTER INFO leaves out the kinds it has none of)."""
    stats = dict(line.split(":", 1) for line in node.cmd("CLUSTER", "INFO").splitlines() if ":" in line)
    return sum(int(stats.get(f"cluster_stats_messages_{kind}_{way}", 0)) for way in ("sent", "received"))


def events_channel(queue):
    return "stratq:{%s}:events" % queue


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


def test_long_poll_waits_on_the_slots_node(cstack, cluster):
    """?wait= is woken by the events channel, sharded: the API is given a
    seed that does not own the queue's slot, whose MOVED sends its
    SSUBSCRIBE to the slot's node, where the scripts SPUBLISH."""
    seed, home = cluster.nodes[0], cluster.nodes[2]
    queue = cluster.name_on(home, "wait")
    api = cstack.start_api(queue, seeds=seed.addr)
    cstack.start_worker(api, queue)
    assert shard_subscribers(home, events_channel(queue)) == 1
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


def test_a_schedule_fires_through_the_cluster(cstack, cluster):
    """A recurring job's schedule (schedule.lua, schedules.lua, which read
    keys derived from <base>) ticked by two workers seeded with other
    nodes (tick.lua): one job per fire, each of which runs."""
    queue = cluster.name_on(cluster.nodes[2], "sched")
    api = cstack.start_api(queue, seeds=cluster.nodes[0].addr)
    for seed in (cluster.nodes[0].addr, cluster.nodes[1].addr):
        cstack.start_worker(api, queue, seeds=seed)
    status, s = api.client.post("/v1/schedules", {"every": "1s", "overlap": "allow",
                                                  "job": {"code": RETURN_ID, "params": {"n": 7}}})
    assert status == 201, s

    def schedule():
        st, body = api.client.get(f"/v1/schedules/{s['id']}")
        assert st == 200, body
        return body

    wait_for(lambda: schedule()["fires"] >= 3 and schedule()["last_status"] == "succeeded",
             JOB_TIMEOUT, lambda: f"3 fires of {schedule()}")
    st, body = api.client.get("/v1/jobs?limit=100")
    jobs = [api.client.get(f"/v1/jobs/{j['id']}")[1] for j in body["jobs"]]
    mine = [j for j in jobs if j.get("schedule") == s["id"]]
    dues = [j["schedule_ms"] for j in mine]
    assert len(mine) >= 3 and len(set(dues)) == len(dues), mine


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


def test_events_subscription_comes_back_with_its_node(cstack, cluster):
    """The node the API's sharded subscription is on, the owner of the
    queue's slot, stops and comes back (with its AOF): the subscription is
    lost, tried again on the seeds in turn (the others answer MOVED to the
    owner while it is away), and made again on the owner; ?wait= is still
    woken by the jobs' events. A seed that is down when the API starts is
    passed over."""
    first, home = cluster.nodes[0], cluster.nodes[1]
    queue = cluster.name_on(home, "sub")
    api = cstack.start_api(queue, seeds=cluster.seeds)
    cstack.start_worker(api, queue)
    home.stop(signal.SIGTERM)
    try:
        wait_for(lambda: any(line.get("msg") == "lost the events subscription, reconnecting"
                             for line in api.log_lines_json()),
                 START_TIMEOUT, lambda: f"the API to lose its subscription\n{api.describe()}")
    finally:
        home.start()
        cluster.wait_ok()
    wait_for(lambda: api.client.get("/readyz")[0] == 200, START_TIMEOUT,
             lambda: f"the API to subscribe again\n{api.describe()}")
    assert shard_subscribers(home, events_channel(queue)) == 1
    st, body = api.client.post("/v1/jobs?wait=30", {"code": RETURN_ID, "params": {"n": 9}})
    assert st in (200, 201) and body["status"] == "succeeded" and body["result"] == 9, body
    # An API whose first seed is down subscribes through the next one.
    first.stop(signal.SIGTERM)
    try:
        other = cstack.start_api(queue, seeds=cluster.seeds)
        assert shard_subscribers(home, events_channel(queue)) == 2
        st, body = other.client.post("/v1/jobs?wait=30", {"code": RETURN_ID, "params": {"n": 8}})
        assert st in (200, 201) and body["status"] == "succeeded" and body["result"] == 8, body
    finally:
        first.start()
        cluster.wait_ok()


def test_plain_redis_py_producer_through_the_cluster(cstack, cluster):
    """docs/protocol.md's producer, as another backend writes it: redis-py's
    RedisCluster, plain commands in the documented order (no stratq code),
    on a queue whose slot is not on the first seed; the result is read back
    with HGET and the events channel is heard with SSUBSCRIBE on the node
    that owns the queue's slot (CLUSTER KEYSLOT <queue>)."""
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
    base = "stratq:{%s}" % queue
    slot = rc.keyslot(queue)
    owner = rc.get_node_from_key(queue)
    assert slot == key_slot(queue) and owner.port == home.port
    sub = Subscriber(owner.port, f"{base}:events", "SSUBSCRIBE")
    try:
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
            seen.extend(sub.events(0.2))
            return any(e.get("id") == job_id and e.get("status") == "succeeded" for e in seen)

        wait_for(heard, 10, lambda: f"the succeeded event on the owner's subscription: {seen}")
        # The API lists the job it did not create.
        st, body = api.client.get("/v1/jobs?status=succeeded")
        assert st == 200 and job_id in [j["id"] for j in body["jobs"]], body
    finally:
        sub.close()
        rc.close()


def test_cancel_reaches_the_busy_worker_through_the_cluster(cstack, cluster):
    """A running job's cancel request is published on its worker's control
    channel (SPUBLISH); the worker subscribed (SSUBSCRIBE) on the node that
    owns the queue's slot, following a seed's MOVED, not on the URL's host,
    which a cluster does not use."""
    home = cluster.nodes[1]
    queue = cluster.name_on(home, "cancel")
    api = cstack.start_api(queue)
    worker = cstack.start_worker(api, queue)
    job_id = api.client.submit({"code": SLEEPY, "params": {"s": 60, "n": 1}})
    api.client.wait_status(job_id, "running")
    control = "stratq:{%s}:control:%s" % (queue, worker.id)
    assert shard_subscribers(home, control) == 1
    st, body = api.client.request("DELETE", f"/v1/jobs/{job_id}")
    assert st == 202, body
    job = api.client.wait_job(job_id, 15)
    assert job["status"] == "cancelled", job
    assert not any(line.get("msg", "").startswith("cannot subscribe to the control channel")
                   for line in worker.log_lines_json()), worker.describe()


def test_events_stay_on_the_queues_shard(cstack, cluster):
    """Sharded pub/sub: a queue's events are published on the node that
    owns its slot and reach no other. A plain SUBSCRIBE on any node hears
    nothing of a job's life while an SSUBSCRIBE on the owner hears it all,
    no cluster bus message carries a PUBLISH, and an SSUBSCRIBE on a node
    that does not own the slot is answered MOVED."""
    home = cluster.nodes[1]
    others = [n for n in cluster.nodes if n is not home]
    queue = cluster.name_on(home, "shard")
    events = events_channel(queue)
    api = cstack.start_api(queue, seeds=others[0].addr)
    cstack.start_worker(api, queue)
    with pytest.raises(redis.exceptions.ResponseError, match="MOVED"):
        Subscriber(others[0].port, events, "SSUBSCRIBE")
    plain = [Subscriber(n.port, events) for n in cluster.nodes]
    owner = Subscriber(home.port, events, "SSUBSCRIBE")
    bus = [(bus_messages(n, "publish"), bus_messages(n, "publishshard")) for n in cluster.nodes]
    try:
        st, body = api.client.post("/v1/jobs?wait=30", {"code": RETURN_ID, "params": {"n": 4}})
        assert st in (200, 201) and body["status"] == "succeeded", body
        seen = []

        def heard():
            seen.extend((e["id"], e["status"]) for e in owner.events(0.2))
            return (body["id"], "succeeded") in seen

        wait_for(heard, 10, lambda: f"the job's events on the owner: {seen}")
        assert [status for i, status in seen if i == body["id"]] == ["queued", "running", "succeeded"]
        assert [p.events(0.5) for p in plain] == [[], [], []]
        assert [(bus_messages(n, "publish"), bus_messages(n, "publishshard"))
                for n in cluster.nodes] == bus
    finally:
        for sub in (*plain, owner):
            sub.close()


def test_live_output_events_are_spublished_on_the_queues_shard(cstack, cluster):
    """A running job's output events go where its job events go: the
    worker SPUBLISHes them beside its live output, on the node that owns
    the queue's slot, and a plain SUBSCRIBE hears nothing."""
    home = cluster.nodes[2]
    queue = cluster.name_on(home, "output")
    events = events_channel(queue)
    api = cstack.start_api(queue)
    cstack.start_worker(api, queue)
    plain = Subscriber(home.port, events)
    owner = Subscriber(home.port, events, "SSUBSCRIBE")
    try:
        code = "import time\n\ndef run(ctx):\n    for i in range(4):\n" \
               "        print(i, flush=True)\n        time.sleep(0.3)\n    return 1\n"
        st, body = api.client.post("/v1/jobs?wait=30", {"code": code})
        assert st in (200, 201) and body["status"] == "succeeded", body
        seen = []

        def heard():
            seen.extend(owner.events(0.2))
            return any(e.get("id") == body["id"] and e.get("status") == "succeeded" for e in seen)

        wait_for(heard, 10, lambda: f"the job's events on the owner: {seen}")
        outputs = [e for e in seen if e.get("id") == body["id"] and "output" in e]
        assert outputs and all("status" not in e for e in outputs), seen
        assert sum(e["output"]["stdout"] for e in outputs) > 0, outputs
        assert plain.events(0.5) == []
    finally:
        plain.close()
        owner.close()


def test_wait_and_cancel_follow_a_slot_migration(cstack, cluster):
    """The queue's slot moves to another primary while a job runs and a
    ?wait= long poll waits for the next: the old owner ends the API's and
    the worker's sharded subscriptions (sunsubscribe), both subscribe again
    on the new owner (its MOVED followed), the running job's cancel
    reaches the worker there, and the long poll is woken by the next job's
    completion, published on the new owner."""
    src, dst = cluster.nodes[2], cluster.nodes[0]
    queue = cluster.name_on(src, "follow")
    slot = key_slot(queue)
    events = events_channel(queue)
    api = cstack.start_api(queue)
    worker = cstack.start_worker(api, queue)
    control = "stratq:{%s}:control:%s" % (queue, worker.id)
    busy = api.client.submit({"code": SLEEPY, "params": {"s": 60, "n": 1}})
    api.client.wait_status(busy, "running")
    wait_for(lambda: shard_subscribers(src, control) == 1, START_TIMEOUT,
             "the worker's control channel on the slot's owner")
    assert shard_subscribers(src, events) == 1
    polled = {}

    def poll():
        polled["reply"] = api.client.post("/v1/jobs?wait=60", {"code": RETURN_ID, "params": {"n": 7}},
                                          timeout=90)

    waiter = threading.Thread(target=poll)
    waiter.start()
    try:
        wait_for(lambda: api.client.get("/v1/queue")[1].get("pending") == 1, START_TIMEOUT,
                 "the long-polled job to wait behind the running one")
        cluster.move_slot(slot, src, dst)
        wait_for(lambda: shard_subscribers(dst, events) == 1, START_TIMEOUT,
                 lambda: f"the API to subscribe on the new owner\n{api.describe()}")
        wait_for(lambda: shard_subscribers(dst, control) == 1, START_TIMEOUT,
                 lambda: f"the worker to subscribe on the new owner\n{worker.describe()}")
        assert any(line.get("msg") == "the events channel's slot left the node; subscribing again"
                   for line in api.log_lines_json()), api.describe()
        st, body = api.client.request("DELETE", f"/v1/jobs/{busy}")
        assert st == 202, body
        job = api.client.wait_job(busy, 15)
        assert job["status"] == "cancelled", job
    finally:
        waiter.join(timeout=90)
    st, body = polled["reply"]
    assert st in (200, 201) and body["status"] == "succeeded" and body["result"] == 7, body
    assert src.cmd("CLUSTER", "COUNTKEYSINSLOT", slot) == 0
