"""The Redis wire protocol, as another backend would use it: plain redis-py
commands only, no stratq code and no HTTP (except where a test checks that
the API and the protocol agree)."""

import json
import time
import uuid

import pytest

from conftest import EVENTS_CHANNEL, PREFIX, QUEUE, TERMINAL, wait_for

SQUARE = "def run(ctx):\n    return {'square': ctx.params['n'] ** 2, 'data': ctx.data}\n"


def enqueue(r, spec, job_id=None):
    """Enqueue exactly as docs/protocol.md tells a backend to."""
    job_id = job_id or uuid.uuid4().hex
    now = int(time.time() * 1000)
    pipe = r.pipeline(transaction=True)  # MULTI ... EXEC
    pipe.hset(
        f"{PREFIX}:job:{job_id}",
        mapping={"spec": json.dumps(spec), "status": "queued", "attempts": 0, "created_ms": now},
    )
    pipe.lpush(QUEUE, job_id)
    pipe.zadd(f"{PREFIX}:index:all", {job_id: now})
    pipe.execute()
    return job_id


def poll_until_terminal(r, job_id, timeout=60):
    return wait_for(
        lambda: (lambda s: s if s in TERMINAL else None)(r.hget(f"{PREFIX}:job:{job_id}", "status")),
        timeout,
        lambda: f"HGET {PREFIX}:job:{job_id} status to be terminal; hash: {r.hgetall(f'{PREFIX}:job:{job_id}')}",
    )


@pytest.mark.parametrize(
    "job_id",
    [None, "a", "Order_42-retry-1", "x" * 64],
    ids=["uuid", "one-char", "mixed", "64-chars"],
)
def test_enqueue_and_poll(stack, r, job_id):
    stack.start_worker()
    job_id = enqueue(r, {"code": SQUARE, "params": {"n": 7}, "data": [1, 2]}, job_id)

    status = poll_until_terminal(r, job_id)

    assert status == "succeeded", r.hgetall(f"{PREFIX}:job:{job_id}")
    assert json.loads(r.hget(f"{PREFIX}:job:{job_id}", "result")) == {"square": 49, "data": [1, 2]}
    assert r.llen(QUEUE) == 0


def test_enqueue_and_subscribe(stack, r, redis_server):
    stack.start_worker()
    sub_client = redis_server.client()
    pubsub = sub_client.pubsub(ignore_subscribe_messages=True)
    try:
        pubsub.subscribe(EVENTS_CHANNEL)
        # Subscribed before enqueueing, so no event can be missed.
        wait_for(
            lambda: r.pubsub_numsub(EVENTS_CHANNEL)[0][1] >= 1,
            10,
            f"the subscription to {EVENTS_CHANNEL} to be active",
        )
        job_id = enqueue(r, {"code": SQUARE, "params": {"n": 5}})

        seen = []

        def terminal_event():
            msg = pubsub.get_message(timeout=0.5)
            if msg is None or msg.get("type") != "message":
                return None
            event = json.loads(msg["data"])
            assert isinstance(event, dict), msg
            # Messages without a status (a running job's output) are skipped,
            # as docs/protocol.md tells consumers to.
            if event.get("id") == job_id and "status" in event:
                seen.append(event["status"])
                if event["status"] in TERMINAL:
                    return event
            return None

        event = wait_for(terminal_event, 60, lambda: f"a terminal event for {job_id}; saw {seen}")
    finally:
        pubsub.close()
        sub_client.close()

    assert event["status"] == "succeeded", event
    assert json.loads(r.hget(f"{PREFIX}:job:{job_id}", "result")) == {"square": 25, "data": None}


def test_failed_job_protocol_fields(stack, r):
    stack.start_worker()
    job_id = enqueue(r, {"code": "def run(ctx):\n    raise KeyError('k')\n"})
    assert poll_until_terminal(r, job_id) == "failed"
    error = json.loads(r.hget(f"{PREFIX}:job:{job_id}", "error"))
    assert error["type"] == "KeyError", error
    assert "Traceback" in error["traceback"], error


def test_protocol_job_visible_through_api(stack, r):
    api = stack.start_api().client
    job_id = enqueue(r, {"code": SQUARE, "params": {"n": 3}})
    assert api.job(job_id)["status"] == "queued"
    assert api.queue()["pending"] == 1

    stack.start_worker()
    job = api.wait_job(job_id)
    assert job["status"] == "succeeded", job
    assert job["result"] == {"square": 9, "data": None}
    assert job["spec"]["code"] == SQUARE


def test_api_jobs_use_the_protocol_keys(stack, r):
    api = stack.start_api().client
    job_id = api.submit({"code": SQUARE, "params": {"n": 4}})
    # One ticket on the queue list, the id in its tenant's backlog.
    assert r.lrange(QUEUE, 0, -1) == ["*"]
    assert r.zrange(f"{PREFIX}:fair:bk:default", 0, -1) == [job_id]
    h = r.hgetall(f"{PREFIX}:job:{job_id}")
    assert h["status"] == "queued", h
    spec = json.loads(h["spec"])
    assert spec["code"] == SQUARE and spec["params"] == {"n": 4}, spec
    assert int(h["created_ms"]) > 0

    stack.start_worker()
    assert poll_until_terminal(r, job_id) == "succeeded"
    assert json.loads(r.hget(f"{PREFIX}:job:{job_id}", "result")) == {"square": 16, "data": None}


def test_custom_queue_and_prefix(stack, r):
    """STRATQ_QUEUE and STRATQ_PREFIX move every key."""
    env = {"STRATQ_QUEUE": "other_queue", "STRATQ_PREFIX": "sq2"}
    worker = stack.spawn("worker", ["worker", "--redis-url", stack.redis_url], env)
    wait_for(lambda: r.zcard("sq2:{other_queue}:workers") == 1, 30, lambda: f"a worker in sq2:{{other_queue}}:workers\n{worker.describe()}")
    job_id = uuid.uuid4().hex
    pipe = r.pipeline(transaction=True)
    pipe.hset(
        f"sq2:{{other_queue}}:job:{job_id}",
        mapping={
            "spec": json.dumps({"code": SQUARE, "params": {"n": 6}}),
            "status": "queued",
            "created_ms": int(time.time() * 1000),
        },
    )
    pipe.lpush("other_queue", job_id)
    pipe.execute()
    wait_for(
        lambda: r.hget(f"sq2:{{other_queue}}:job:{job_id}", "status") in TERMINAL,
        60,
        lambda: f"the job under the custom prefix to finish: {r.hgetall(f'sq2:{{other_queue}}:job:{job_id}')}",
    )
    assert r.hget(f"sq2:{{other_queue}}:job:{job_id}", "status") == "succeeded"
    assert json.loads(r.hget(f"sq2:{{other_queue}}:job:{job_id}", "result"))["square"] == 36

    # The API honours the same settings.
    api = stack.start_api(env=env).client
    api_job = api.submit({"code": SQUARE, "params": {"n": 2}})
    assert r.hget(f"sq2:{{other_queue}}:job:{api_job}", "status") in ("queued", "running", "succeeded")
    assert api.wait_job(api_job)["result"]["square"] == 4
    assert api.job(job_id)["status"] == "succeeded"
    assert api.queue()["workers"] == 1

    assert not r.exists(f"{PREFIX}:workers")
    assert not any(r.scan_iter(f"{PREFIX}:*"))
    assert r.llen(QUEUE) == 0 and not r.exists(QUEUE)
