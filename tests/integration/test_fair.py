"""Tenants, fair share, caps of running jobs, priorities and delayed jobs
(docs/protocol.md, "Tenants, priorities and fair share"; docs/api.md).
Real API, real workers, real Redis: the order jobs ran in is read back from
their records' started_ms and finished_ms. Pause, resume and the tenants'
route are in test_tenants.py."""

import os
import signal
import time

import pytest

from conftest import PREFIX, QUEUE, wait_for

NOOP = "def run(ctx):\n    return 1\n"
SLEEP = "import time\n\ndef run(ctx):\n    time.sleep(ctx.params.get('s', 0.3))\n    return 1\n"


def submit_batch(api, specs):
    """POST /v1/jobs/batch in chunks of 1000; the ids, in order."""
    ids = []
    for i in range(0, len(specs), 1000):
        status, body = api.post("/v1/jobs/batch", {"jobs": specs[i:i + 1000]})
        assert status == 200, (status, body)
        for item in body["jobs"]:
            assert "id" in item and "error" not in item, item
            ids.append(item["id"])
    return ids


def records(r, ids, fields=("status", "started_ms", "finished_ms", "tenant", "priority")):
    pipe = r.pipeline(transaction=False)
    for i in ids:
        pipe.hmget(f"{PREFIX}:job:{i}", *fields)
    return [dict(zip(fields, row)) for row in pipe.execute()]


def all_done(r, ids):
    return all(rec["status"] in ("succeeded", "failed") for rec in records(r, ids, ("status",)))


def test_a_small_tenant_is_served_in_turn_behind_a_sweep(stack, r):
    """Tenant A submits 2,000 no-op jobs, then tenant B 10: with 2 workers,
    every B job starts before A has had more than 2 x 10 more jobs started
    after B's submit. One FIFO would run B after all of A."""
    api = stack.start_api().client
    a_ids = submit_batch(api, [{"code": NOOP, "tenant": "sweep"}] * 2000)
    stack.start_workers(2)
    # B comes while A's sweep is under way.
    wait_for(lambda: r.hget(f"{PREFIX}:job:{a_ids[50]}", "status") == "succeeded", 60,
             "the sweep to be under way")
    b_ids = submit_batch(api, [{"code": NOOP, "tenant": "backtest"}] * 10)
    b_submitted = min(int(x["created_ms"]) for x in records(r, b_ids, ("created_ms",)))
    wait_for(lambda: all_done(r, b_ids), 60, "tenant B's jobs to finish")
    b = records(r, b_ids)
    assert all(x["tenant"] == "backtest" and x["status"] == "succeeded" for x in b), b
    b_last_start = max(int(x["started_ms"]) for x in b)
    a = [x for x in records(r, a_ids) if x["started_ms"]]
    a_between = [x for x in a if b_submitted <= int(x["started_ms"]) <= b_last_start]
    assert len(a_between) <= 20, (
        f"{len(a_between)} of the sweep's jobs started between B's submit and B's last start")
    # And the sweep is not starved either: it goes on after B.
    assert sum(1 for x in records(r, a_ids, ("status",)) if x["status"] != "queued") > 60


def test_a_high_priority_job_is_the_next_one_started(stack, r):
    """A high job submitted behind 1,000 normal ones (of the same tenant
    and of another) is the next one a free worker starts."""
    api = stack.start_api().client
    normal = submit_batch(api, [{"code": NOOP, "tenant": "research"}] * 600
                          + [{"code": NOOP, "tenant": "other"}] * 400)
    status, body = api.post("/v1/jobs", {"code": NOOP, "tenant": "live", "priority": "high"})
    assert status == 201, body
    high = body["id"]
    assert api.job(high)["priority"] == 8 and api.job(high)["tenant"] == "live"
    stack.start_worker()
    api.wait_job(high)
    first = min(int(x["started_ms"]) for x in records(r, normal) if x["started_ms"])
    assert int(api.job(high)["started_ms"]) <= first


def test_priority_orders_a_tenants_own_jobs(stack, r):
    """Within one tenant: priority first, then first come first served."""
    api = stack.start_api().client
    assert api.post("/v1/queue/pause")[0] == 200
    ids = [api.submit({"code": NOOP, "tenant": "t", "priority": p}) for p in (1, 9, 5, 9, 0)]
    stack.start_worker()
    assert api.post("/v1/queue/resume")[0] == 200
    for i in ids:
        api.wait_job(i)
    starts = [int(x["started_ms"]) for x in records(r, ids)]
    order = sorted(range(len(ids)), key=lambda i: (starts[i], i))
    assert order == [1, 3, 2, 0, 4], starts


def running_at_once(recs):
    """The most jobs of recs whose [started_ms, finished_ms) overlap."""
    edges = []
    for x in recs:
        edges.append((int(x["started_ms"]), 1))
        edges.append((int(x["finished_ms"]), -1))
    most = now = 0
    for _, d in sorted(edges):
        now += d
        most = max(most, now)
    return most


def test_a_tenants_cap_holds_across_workers_even_while_they_are_killed(stack, r):
    """max_running 2 for one tenant, 4 workers: never more than 2 of its
    jobs run at once, also while workers are SIGKILLed and their jobs given
    back by the reaper; another tenant's jobs use the other workers."""
    env = {"STRATQ_TENANTS": "capped:max_running=2"}
    api = stack.start_api(env=env).client
    wenv = {"STRATQ_HEARTBEAT_S": "1"}
    workers = stack.start_workers(4, env=wenv)
    capped = submit_batch(api, [{"code": SLEEP, "tenant": "capped", "params": {"s": 0.4}}] * 16)
    free = submit_batch(api, [{"code": SLEEP, "tenant": "free", "params": {"s": 0.2}}] * 8)
    for victim in workers[:2]:
        wait_for(lambda: r.llen(f"{PREFIX}:processing:{victim.id}") > 0, 30,
                 f"worker {victim.id} to be running a job")
        os.kill(victim.pid, signal.SIGKILL)
        victim.popen.wait(timeout=10)
        workers.append(stack.start_worker(env=wenv))
    wait_for(lambda: all_done(r, capped + free), 120, "every job to finish")
    recs = records(r, capped)
    assert all(x["status"] == "succeeded" for x in recs), recs
    assert running_at_once(recs) <= 2
    # The cap is the capped tenant's only: with the 4 workers idle, another
    # tenant's jobs run 3 or 4 at once.
    wait_for(lambda: r.zcard(f"{PREFIX}:workers") >= 4 and
             all(r.llen(f"{PREFIX}:processing:{w.id}") == 0 for w in workers[2:]), 60,
             "4 idle workers")
    more = submit_batch(api, [{"code": SLEEP, "tenant": "free", "params": {"s": 2}}] * 4)
    wait_for(lambda: all_done(r, more), 120, "the free tenant's jobs to finish")
    assert running_at_once(records(r, more)) > 2
    tenants = {t["tenant"]: t for t in api.get("/v1/tenants")[1]["tenants"]}
    assert tenants["capped"]["max_running"] == 2 and tenants["capped"]["running"] == 0
    assert tenants["capped"]["waiting"] == 0


@pytest.mark.parametrize("bad,field", [
    ({"priority": 10}, "priority"), ({"priority": "urgent"}, "priority"),
    ({"tenant": "a:b"}, "tenant"), ({"tenant": ""}, "tenant"), ({"tenant": "x" * 65}, "tenant"),
    ({"run_at": "tomorrow"}, "run_at"), ({"run_at": "2026-02-30T10:00:00Z"}, "run_at"),
    ({"delay_s": -1}, "delay_s"), ({"delay_s": 1, "run_at": 5}, "run_at"),
])
def test_bad_placement_fields_are_refused_naming_the_field(stack, r, bad, field):
    api = stack.start_api().client
    status, body = api.post("/v1/jobs", {"code": NOOP, **bad})
    assert status == 400 and f"'{field}'" in body["error"], body
    assert r.llen(QUEUE) == 0


def test_a_delayed_job_waits_until_its_time(stack, r):
    api = stack.start_api().client
    stack.start_worker()
    status, body = api.post("/v1/jobs", {"code": NOOP, "delay_s": 1.5})
    assert status == 201 and body["status"] == "scheduled", body
    rec = api.job(body["id"])
    assert rec["status"] == "scheduled"
    due = rec["next_run_ms"]
    assert due - rec["created_ms"] == 1500, rec
    assert api.queue()["scheduled"] == 1 and r.llen(QUEUE) == 0
    done = api.wait_job(body["id"])
    assert done["status"] == "succeeded"
    assert done["started_ms"] >= due, done
    # An RFC 3339 run_at in the past is now.
    status, body = api.post("/v1/jobs", {"code": NOOP, "run_at": "2020-01-01T00:00:00Z"})
    assert status == 201 and body["status"] == "queued", body
    status, body = api.post("/v1/jobs", {"code": NOOP,
                                         "run_at": int(time.time() * 1000) + 600_000})
    assert status == 201 and body["status"] == "scheduled", body
    assert api.job(body["id"])["next_run_ms"] > time.time() * 1000 + 590_000


def test_cancelling_a_waiting_job_takes_its_ticket(stack, r):
    api = stack.start_api().client
    ids = [api.submit({"code": NOOP, "tenant": "t"}) for _ in range(3)]
    assert r.llen(QUEUE) == 3 and api.queue()["waiting"] == 3
    status, body = api.request("DELETE", f"/v1/jobs/{ids[1]}")
    assert status == 200 and body["status"] == "cancelled", body
    assert r.llen(QUEUE) == 2 and api.queue()["waiting"] == 2
    stack.start_worker()
    assert api.wait_job(ids[0])["status"] == "succeeded"
    assert api.wait_job(ids[2])["status"] == "succeeded"
    wait_for(lambda: r.llen(QUEUE) == 0, 10, "no ticket left")
    assert api.queue()["waiting"] == 0


def test_a_retried_job_waits_in_its_tenant_again(stack, r):
    api = stack.start_api().client
    stack.start_worker()
    jid = api.submit({"code": "def run(ctx):\n    raise ValueError('no')\n", "tenant": "t",
                      "priority": 9})
    assert api.wait_job(jid)["status"] == "failed"
    status, body = api.post(f"/v1/jobs/{jid}/retry")
    assert status == 200, body
    assert api.wait_job(jid)["status"] == "failed"
    assert api.job(jid)["attempts"] == 2 and api.job(jid)["tenant"] == "t"
    tenants = {t["tenant"]: t for t in api.get("/v1/tenants")[1]["tenants"]}
    assert tenants["t"]["running"] == 0 and tenants["t"]["waiting"] == 0
