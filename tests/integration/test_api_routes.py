"""The job routes of the API against the real stack: the result, cancel,
retry, listing, batch, live logs, workers, idempotency, a spec's limits
and metrics. Long polls and the events stream are in test_events.py;
routing, auth and Redis outages in test_server.py."""

import json
import time

from conftest import PREFIX, QUEUE, job_pid, pid_alive, wait_for

RETURN_7 = "def run(ctx):\n    return 7\n"
SLEEPER = "import time\n\ndef run(ctx):\n    time.sleep(ctx.params.get('s', 30))\n    return 'woke'\n"
BOOM = "def run(ctx):\n    raise RuntimeError('boom')\n"


def test_result_route(stack):
    api = stack.start_api().client
    stack.start_worker()
    job_id = api.submit({"code": "def run(ctx):\n    return {'x': 0.1}\n"})
    status, body = api.get(f"/v1/jobs/{job_id}/result?wait=30", timeout=40)
    assert status == 200, body
    assert body == {"id": job_id, "status": "succeeded", "error": None, "result": {"x": 0.1}}
    status, body = api.get("/v1/jobs/nope/result")
    assert status == 404


def test_cancel_a_queued_job(stack, r):
    api = stack.start_api().client
    job_id = api.submit({"code": RETURN_7})
    status, body = api.request("DELETE", f"/v1/jobs/{job_id}")
    assert status == 200 and body == {"id": job_id, "status": "cancelled"}, body
    assert api.job(job_id)["status"] == "cancelled"
    assert r.llen(QUEUE) == 0
    # A worker started now finds nothing to run.
    stack.start_worker()
    assert api.job(job_id)["status"] == "cancelled"
    status, body = api.request("DELETE", f"/v1/jobs/{job_id}")
    assert status == 409 and "already finished" in body["error"], body
    status, _ = api.request("DELETE", "/v1/jobs/unknown-job")
    assert status == 404


def test_cancel_a_running_job_kills_it_within_a_second(stack):
    api = stack.start_api().client
    worker = stack.start_worker()
    code = "import time\n\ndef run(ctx):\n    print('started', flush=True)\n    time.sleep(60)\n"
    job_id = api.submit({"code": code})
    api.wait_status(job_id, "running")
    api.wait_printed(job_id, "started")
    pid = job_pid(worker.pid)  # from outside: the job may not know its host pid
    status, body = api.request("DELETE", f"/v1/jobs/{job_id}")
    assert status == 202 and body == {"id": job_id, "status": "cancelling"}, body
    job = api.wait_job(job_id, timeout=10)
    assert job["status"] == "cancelled", job
    assert job["error"]["type"] == "Cancelled"
    assert job["finished_ms"] - job["cancel_requested_ms"] <= 1500, job
    wait_for(lambda: not pid_alive(pid), 5, f"the job's process {pid} to be gone")
    # The worker goes on.
    job = api.wait_job(api.submit({"code": RETURN_7}))
    assert job["status"] == "succeeded", job


def test_retry(stack):
    api = stack.start_api().client
    stack.start_worker()
    job_id = api.submit({"code": BOOM})
    assert api.wait_job(job_id)["status"] == "failed"
    status, body = api.post(f"/v1/jobs/{job_id}/retry")
    assert status == 200 and body == {"id": job_id, "status": "queued", "attempts": 1}, body
    job = api.wait_job(job_id)
    assert job["status"] == "failed" and job["attempts"] == 2, job
    ok = api.submit({"code": RETURN_7})
    assert api.wait_job(ok)["status"] == "succeeded"
    status, body = api.post(f"/v1/jobs/{ok}/retry")
    assert status == 409 and "succeeded" in body["error"], body
    assert api.post("/v1/jobs/ghost/retry")[0] == 404


def test_listing_pages_newest_first(stack):
    api = stack.start_api().client
    ids = []
    for i in range(5):
        ids.append(api.submit({"code": RETURN_7, "id": f"list-{i}"}))
        time.sleep(0.002)  # distinct creation times, so the order is defined
    seen, cursor = [], None
    for _ in range(5):
        path = "/v1/jobs?status=queued&limit=2" + (f"&cursor={cursor}" if cursor else "")
        status, body = api.get(path)
        assert status == 200, body
        seen += [j["id"] for j in body["jobs"]]
        assert all(j["status"] == "queued" for j in body["jobs"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    status, body = api.get("/v1/jobs")
    assert status == 200 and [j["id"] for j in body["jobs"]] == list(reversed(ids))
    assert api.get("/v1/jobs?status=succeeded")[1]["jobs"] == []
    for bad in ("status=bogus", "limit=0", "limit=501", "cursor=zzz"):
        status, body = api.get(f"/v1/jobs?{bad}")
        assert status == 400, (bad, body)


def test_batch(stack, r):
    api = stack.start_api().client
    specs = [{"code": RETURN_7}, {"code": 5}, {"code": RETURN_7, "id": "batch-a"},
             {"params": {}}]
    status, body = api.post("/v1/jobs/batch", {"jobs": specs})
    assert status == 200, body
    items = body["jobs"]
    assert len(items) == 4
    assert items[0]["status"] == "queued" and "id" in items[0]
    assert "'code' must be a string" in items[1]["error"]
    assert items[2] == {"id": "batch-a", "status": "queued"}
    assert "'code'" in items[3]["error"]
    assert r.llen(QUEUE) == 2
    status, body = api.post("/v1/jobs/batch", {"jobs": [{"code": RETURN_7}] * 1001})
    assert status == 400 and "1000" in body["error"], body
    assert api.post("/v1/jobs/batch", {"jobs": []})[0] == 400
    assert api.post("/v1/jobs/batch", [1])[0] == 400


def test_idempotent_resubmission(stack, r):
    api = stack.start_api().client
    status, body = api.post("/v1/jobs", {"code": RETURN_7, "id": "order-42"})
    assert status == 201 and body == {"id": "order-42", "status": "queued"}, body
    status, body = api.post("/v1/jobs", {"code": "def run(ctx):\n    return 8\n", "id": "order-42"})
    assert status == 200 and body == {"id": "order-42", "status": "queued"}, body
    status, body = api.post("/v1/jobs", {"code": RETURN_7}, headers={"Idempotency-Key": "order-42"})
    assert status == 200 and body["id"] == "order-42", body
    assert r.llen(QUEUE) == 1
    assert "return 7" in json.loads(r.hget(f"{PREFIX}:job:order-42", "spec"))["code"]
    status, body = api.post("/v1/jobs", {"code": RETURN_7, "id": "a"}, headers={"Idempotency-Key": "b"})
    assert status == 400 and "differ" in body["error"], body
    status, body = api.post("/v1/jobs", {"code": RETURN_7, "id": "has space"})
    assert status == 400 and "'id'" in body["error"], body


def test_logs_are_readable_while_the_job_runs(stack):
    api = stack.start_api().client
    stack.start_worker()
    code = ("import sys, time\n\ndef run(ctx):\n    print('first line', flush=True)\n"
            "    print('to stderr', file=sys.stderr, flush=True)\n    time.sleep(3)\n"
            "    print('second line', flush=True)\n    return 1\n")
    job_id = api.submit({"code": code})

    def first_seen():
        status, body = api.get(f"/v1/jobs/{job_id}/logs")
        assert status == 200, body
        return body if "first line" in body["stdout"] and "to stderr" in body["stderr"] else None

    body = wait_for(first_seen, 20, "the first line in the live log")
    assert body["status"] == "running" and body["done"] is False, body
    off_out, off_err = body["stdout_offset"], body["stderr_offset"]
    assert off_out == len("first line\n")
    api.wait_job(job_id)
    status, body = api.get(f"/v1/jobs/{job_id}/logs?stdout_offset={off_out}&stderr_offset={off_err}")
    assert status == 200 and body["done"] is True, body
    assert body["stdout"] == "second line\n" and body["stderr"] == "", body
    assert api.get("/v1/jobs/nope/logs")[0] == 404


def test_workers_route(stack):
    api = stack.start_api().client
    w1, w2 = stack.start_workers(2)
    status, body = api.get("/v1/workers")
    assert status == 200, body
    by_id = {w["id"]: w for w in body["workers"]}
    assert set(by_id) == {w1.id, w2.id}
    for w in (w1, w2):
        rec = by_id[w.id]
        assert rec["state"] == "idle" and rec["pid"] == w.pid and rec["current_job"] is None
        assert rec["jobs_done"] == 0 and rec["last_heartbeat_ms"] > 0 and rec["host"]


def test_limits_name_the_limit(stack):
    api = stack.start_api().client
    deep = {"code": RETURN_7, "data": 1}
    for _ in range(70):
        deep["data"] = [deep["data"]]
    status, body = api.post("/v1/jobs", deep)
    assert status == 400 and "64" in body["error"], body
    status, body = api.post("/v1/jobs", {"code": RETURN_7, "params": {f"p{i}": i for i in range(1001)}})
    assert status == 400 and "1000" in body["error"] and "params" in body["error"], body
    status, body = api.post("/v1/jobs", {"code": RETURN_7, "timeout_s": 99999})
    assert status == 400 and "STRATQ_MAX_TIMEOUT_S" in body["error"] and "3600" in body["error"], body
    status, body = api.post("/v1/jobs", {"code": RETURN_7, "memory_mb": 99999})
    assert status == 400 and "STRATQ_MAX_MEMORY_MB" in body["error"] and "4096" in body["error"], body


def test_metrics(stack):
    api = stack.start_api().client
    stack.start_worker()
    for code in (RETURN_7, RETURN_7, BOOM):
        api.wait_job(api.submit({"code": code}))

    def metrics():
        status, text = api.get("/metrics")
        assert status == 200 and isinstance(text, str), text
        return dict(line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))

    # The API adds its submits before it answers; the worker adds its
    # outcomes with the first heartbeat after the queue ran dry, about a
    # second after the last job.
    assert metrics()["stratq_jobs_submitted_total"] == "3"
    wait_for(lambda: metrics().get("stratq_job_duration_seconds_count") == "3", 10,
             lambda: f"the worker's counts in /metrics: {metrics()}")
    lines = metrics()
    assert lines["stratq_jobs_submitted_total"] == "3"
    assert lines['stratq_jobs_completed_total{status="succeeded"}'] == "2"
    assert lines['stratq_jobs_completed_total{status="failed"}'] == "1"
    assert lines["stratq_job_duration_seconds_count"] == "3"
    assert lines['stratq_job_duration_seconds_bucket{le="+Inf"}'] == "3"
    assert lines["stratq_job_queue_wait_seconds_count"] == "3"
    assert lines["stratq_workers"] == "1" and lines["stratq_queue_pending"] == "0"

    # GET /v1/queue gives the same histograms as JSON, in ms (what stratq
    # monitor takes its percentiles from).
    hist = api.queue()["histograms"]
    for key, metric in (("run", "stratq_job_duration_seconds"), ("wait", "stratq_job_queue_wait_seconds")):
        h = hist[key]
        buckets = [(k[len(metric) + 12:-2], int(v)) for k, v in lines.items() if k.startswith(metric + "_bucket{")]
        finite = [(le, n) for le, n in buckets if le != "+Inf"]
        assert len(h["le_ms"]) == len(h["counts"]) == len(finite) == 16, (key, h, buckets)
        assert h["le_ms"] == [round(float(le) * 1000, 6) for le, _ in finite], (key, h)
        assert h["counts"] == [n for _, n in finite], (key, h, buckets)
        assert h["count"] == int(lines[metric + "_count"]) == dict(buckets)["+Inf"] == 3, (key, h)
        assert abs(h["sum_ms"] - float(lines[metric + "_sum"]) * 1000) <= 0.5 + 1e-9, (key, h, lines[metric + "_sum"])
    assert hist["run"]["le_ms"][:3] == [5, 10, 25] and hist["run"]["le_ms"][-1] == 3600000, hist
    status, body = api.get("/readyz")
    assert status == 200 and body["ready"] is True
