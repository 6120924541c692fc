"""Tenants and pauses as the views show them (issue 20): GET /v1/jobs
?tenant= and each listed job's tenant, the /metrics gauges of the backlog,
the CLI's tenant options, and `stratq monitor`'s held, backlog and paused.
A real API and Redis; no worker unless a job must run. The CLI's pause,
resume and tenants commands are in test_tenants.py."""

import datetime
import json
import time
import urllib.parse

from conftest import EXAMPLES, QUEUE, Api, describe_run, parse_json, run_cli, wait_for

NOOP = "def run(ctx):\n    return 1\n"


def listing(api, query=""):
    """Every job of GET /v1/jobs?QUERY, following the cursor to its end."""
    jobs, cursor = [], None
    for _ in range(100):
        path = "/v1/jobs?limit=2" + (f"&{query}" if query else "")
        if cursor:
            path += "&cursor=" + urllib.parse.quote(cursor, safe="")
        status, body = api.get(path)
        assert status == 200, (path, body)
        jobs += body["jobs"]
        cursor = body["next_cursor"]
        if cursor is None:
            return jobs
    raise AssertionError(f"GET /v1/jobs?{query} did not end in 100 pages")


# -------------------------------------------------------------- the listing


def test_the_listing_filters_by_tenant_and_shows_each_jobs_tenant(stack, r):
    api = stack.start_api().client
    ids = {}
    for i, tenant in enumerate(["alice", "bob", "alice", None, "alice", "bob"]):
        spec = {"code": NOOP, "id": f"t{i}"}
        if tenant:
            spec["tenant"] = tenant
        ids[f"t{i}"] = tenant or "default"
        api.submit(spec)
    # A job another producer pushed onto the queue list has no tenant.
    r.hset("stratq:{python_execution_queue}:job:raw", mapping={
        "status": "queued", "spec": json.dumps({"code": NOOP}), "attempts": 0, "created_ms": 1})
    r.zadd("stratq:{python_execution_queue}:index:all", {"raw": 1})
    r.lpush(QUEUE, "raw")

    every = listing(api)
    assert {j["id"]: j["tenant"] for j in every} == {**ids, "raw": None}
    alice = listing(api, "tenant=alice")
    assert [j["id"] for j in alice] == ["t4", "t2", "t0"]
    assert all(j["tenant"] == "alice" for j in alice)
    assert [j["id"] for j in listing(api, "tenant=bob&status=queued")] == ["t5", "t1"]
    assert [j["id"] for j in listing(api, "tenant=default")] == ["t3"]
    assert listing(api, "tenant=nobody") == []
    assert listing(api, "tenant=alice&status=succeeded") == []
    # A job's own record carries the tenant too.
    assert api.job("t1")["tenant"] == "bob"
    for bad in ("tenant=", "tenant=a%20b", "tenant=" + "x" * 65, "tenant=%2a"):
        status, body = api.get(f"/v1/jobs?{bad}")
        assert status == 400 and "tenant" in body["error"], (bad, body)


# -------------------------------------------------------------- /metrics


def metrics(api):
    """GET /metrics: ({metric: value}, the text)."""
    status, text = api.get("/metrics")
    assert status == 200 and isinstance(text, str), text
    return dict(line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#")), text


def test_metrics_has_the_held_backlog_and_paused_gauges(stack):
    api = stack.start_api().client  # no worker: nothing starts
    for _ in range(3):
        api.submit({"code": NOOP, "tenant": "a"})
    status, body = api.post("/v1/jobs", {"code": NOOP, "tenant": "b", "delay_s": 3600})
    assert status == 201 and body["status"] == "scheduled", body
    values, text = metrics(api)
    for name in ("stratq_queue_held", "stratq_queue_backlog", "stratq_queue_paused"):
        assert f"# TYPE {name} gauge\n" in text and f"# HELP {name} " in text, text
    gauges = ("pending", "held", "scheduled", "backlog", "paused")
    assert {g: values[f"stratq_queue_{g}"] for g in gauges} == {
        "pending": "3", "held": "0", "scheduled": "1", "backlog": "4", "paused": "0"}

    # Paused, the queue's entries are held: the backlog stays.
    assert api.post("/v1/queue/pause")[0] == 200
    values, _ = metrics(api)
    assert {g: values[f"stratq_queue_{g}"] for g in gauges} == {
        "pending": "0", "held": "3", "scheduled": "1", "backlog": "4", "paused": "1"}
    q = api.queue()
    assert (q["pending"], q["held"], q["backlog"], q["paused"]) == (0, 3, 4, True), q

    assert api.post("/v1/queue/resume")[0] == 200
    values, _ = metrics(api)
    assert {g: values[f"stratq_queue_{g}"] for g in gauges} == {
        "pending": "3", "held": "0", "scheduled": "1", "backlog": "4", "paused": "0"}


def tenant_gauges(values):
    """{tenant: (waiting, running, paused)} from GET /metrics."""
    out = {}
    for key, v in values.items():
        for i, g in enumerate(("waiting", "running", "paused")):
            prefix = f'stratq_tenant_{g}{{tenant="'
            if key.startswith(prefix):
                out.setdefault(key[len(prefix):-2], [0, 0, 0])[i] = int(v)
    return {t: tuple(v) for t, v in out.items()}


def test_metrics_has_each_tenants_waiting_running_and_paused(stack):
    proc = stack.start_api()
    api = proc.client
    for _ in range(3):
        api.submit({"code": NOOP, "tenant": "a"})
    api.submit({"code": NOOP, "tenant": "b.2"})
    values, text = metrics(api)
    for g in ("waiting", "running", "paused"):
        assert f"# TYPE stratq_tenant_{g} gauge\n" in text, text
    assert tenant_gauges(values) == {"a": (3, 0, 0), "b.2": (1, 0, 0)}, text

    assert api.post("/v1/queue/pause?tenant=a")[0] == 200
    assert tenant_gauges(metrics(api)[0]) == {"a": (3, 0, 1), "b.2": (1, 0, 0)}

    # b's job runs (a is paused) and the worker is held in it: running 1.
    stack.start_worker()
    api.submit({"code": "import time\n\ndef run(ctx):\n    time.sleep(60)\n", "tenant": "b.2"})
    wait_for(lambda: tenant_gauges(metrics(api)[0]).get("b.2") == (0, 1, 0), 30,
             lambda: f"b.2 running 1 with nothing waiting: {metrics(api)[1]}")
    assert tenant_gauges(metrics(api)[0])["a"] == (3, 0, 1)


# -------------------------------------------------------------- the CLI


def submit(api_url, *flags):
    """`stratq submit examples/hello.py FLAGS --json`: the API's answer."""
    res = run_cli(["submit", EXAMPLES / "hello.py", *flags, "--json"], api_url)
    assert res.returncode == 0, describe_run(res)
    return parse_json(res)


def test_submit_passes_tenant_priority_delay_and_run_at(stack):
    proc = stack.start_api()  # no worker: the jobs stay where they are put
    api = proc.client
    job = api.job(submit(proc.url, "--tenant", "alice", "--priority", "high")["id"])
    assert (job["tenant"], job["priority"], job["status"]) == ("alice", 8, "queued"), job
    job = api.job(submit(proc.url, "--priority", "3")["id"])
    assert (job["tenant"], job["priority"]) == ("default", 3), job

    before = int(time.time() * 1000)
    answer = submit(proc.url, "--delay", "3600.5")
    assert answer["status"] == "scheduled", answer
    job = api.job(answer["id"])
    assert before + 3600500 <= job["next_run_ms"] <= int(time.time() * 1000) + 3600500, job

    at = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) + datetime.timedelta(days=2)
    job = api.job(submit(proc.url, "--run-at", at.strftime("%Y-%m-%dT%H:%M:%SZ"))["id"])
    assert job["status"] == "scheduled" and job["next_run_ms"] == int(at.timestamp() * 1000), job
    ms = int(at.timestamp() * 1000) + 1234
    job = api.job(submit(proc.url, "--run-at", str(ms), "--tenant", "bob")["id"])
    assert (job["status"], job["next_run_ms"], job["tenant"]) == ("scheduled", ms, "bob"), job

    # The API checks the values, and the CLI says what it answered.
    for flags, field in ((["--priority", "urgent"], "priority"), (["--delay", "soon"], "delay_s"),
                         (["--run-at", "tomorrow"], "run_at"), (["--tenant", "a b"], "tenant"),
                         (["--delay", "5", "--run-at", str(ms)], "delay_s")):
        res = run_cli(["submit", EXAMPLES / "hello.py", *flags], proc.url)
        assert res.returncode == 3 and "400" in res.stderr and field in res.stderr, describe_run(res)


def test_jobs_tenant_lists_one_tenants_jobs_with_a_tenant_column(stack):
    proc = stack.start_api()
    ids = {t: proc.client.submit({"code": NOOP, "tenant": t}) for t in ("alice", "bob")}
    res = run_cli(["jobs", "--tenant", "alice", "--json"], proc.url)
    assert res.returncode == 0, describe_run(res)
    assert [(j["id"], j["tenant"]) for j in parse_json(res)["jobs"]] == [(ids["alice"], "alice")]
    res = run_cli(["jobs"], proc.url)
    assert res.returncode == 0, describe_run(res)
    lines = res.stdout.splitlines()
    assert lines[0].split()[:3] == ["ID", "STATUS", "TENANT"], describe_run(res)
    rows = {line.split()[0]: line.split()[2] for line in lines[1:]}
    assert rows == {ids["alice"]: "alice", ids["bob"]: "bob"}, describe_run(res)
    res = run_cli(["jobs", "--tenant", "bob", "--status", "queued"], proc.url)
    assert [line.split()[0] for line in res.stdout.splitlines()[1:]] == [ids["bob"]], describe_run(res)
    res = run_cli(["jobs", "--tenant", "nobody"], proc.url)
    assert res.returncode == 0 and res.stdout.strip() == "no jobs", describe_run(res)


def test_a_tenants_token_reaches_its_own_tenants_jobs_only(stack, r, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text("admin-token\nalice-token tenant=alice\nbob-token tenant=bob\n")
    proc = stack.start_api(env={"STRATQ_API_TOKENS_FILE": str(tokens)})
    admin, alice, bob = (Api(proc.url, token=t) for t in ("admin-token", "alice-token", "bob-token"))
    assert alice.post("/v1/jobs", {"code": NOOP, "id": "a1"})[0] == 201
    assert bob.post("/v1/jobs", {"code": NOOP, "id": "b1"})[0] == 201
    assert admin.post("/v1/jobs", {"code": NOOP, "id": "d1"})[0] == 201  # tenant default
    # A job another producer pushed has no tenant: an operator's to see.
    r.hset("stratq:{python_execution_queue}:job:raw", mapping={
        "status": "failed", "spec": json.dumps({"code": NOOP}), "attempts": 1, "created_ms": 1})
    r.zadd("stratq:{python_execution_queue}:index:all", {"raw": 1})

    # Its own job, as the operator sees it.
    status, job = alice.get("/v1/jobs/a1")
    assert status == 200 and job["tenant"] == "alice", job
    assert alice.get("/v1/jobs/a1/logs")[0] == 200
    # Every other job does not exist for it: read, wait, logs, cancel, retry.
    for other in ("b1", "d1", "raw"):
        for method, path in (("GET", f"/v1/jobs/{other}"), ("GET", f"/v1/jobs/{other}?wait=5"),
                             ("GET", f"/v1/jobs/{other}/result"), ("GET", f"/v1/jobs/{other}/logs"),
                             ("DELETE", f"/v1/jobs/{other}"), ("POST", f"/v1/jobs/{other}/retry")):
            status, body = alice.request(method, path)
            assert status == 404 and body["error"] == f"no job with id '{other}'", (method, path, body)
    assert r.hget("stratq:{python_execution_queue}:job:b1", "status") == "queued"
    assert r.hget("stratq:{python_execution_queue}:job:raw", "status") == "failed"
    # Nor can it learn of one by submitting with its id, alone or in a batch.
    status, body = alice.post("/v1/jobs", {"code": NOOP, "id": "b1"})
    assert status == 409 and "another tenant" in body["error"], body
    status, body = alice.post("/v1/jobs/batch", {"jobs": [{"code": NOOP, "id": "b1"},
                                                           {"code": NOOP, "id": "a1"}]})
    assert status == 200 and "another tenant" in body["jobs"][0]["error"], body
    assert body["jobs"][1] == {"id": "a1", "status": "queued"}, body
    # Its listing is its tenant's, asked for or not; another's is refused.
    assert [j["id"] for j in listing(alice)] == ["a1"]
    assert [j["id"] for j in listing(alice, "tenant=alice&status=queued")] == ["a1"]
    status, body = alice.get("/v1/jobs?tenant=bob")
    assert status == 403 and "alice" in body["error"], body
    # The operator's token reaches every job, and cancels bob's.
    assert sorted(j["id"] for j in listing(admin)) == ["a1", "b1", "d1", "raw"]
    assert admin.get("/v1/jobs/raw")[0] == 200
    assert bob.request("DELETE", "/v1/jobs/b1")[0] == 200
    assert admin.request("DELETE", "/v1/jobs/a1")[0] == 200


# -------------------------------------------------------------- stratq monitor


def monitor(api_url, *flags):
    res = run_cli(["monitor", *flags], api_url, env={"LC_ALL": "C", "LANG": "C"})
    assert res.returncode == 0, describe_run(res)
    return res


def test_monitor_shows_held_backlog_and_what_is_paused(stack):
    proc = stack.start_api()  # no worker
    api = proc.client
    for t in ("alice", "alice", "bob"):
        api.submit({"code": NOOP, "tenant": t})
    status, body = api.post("/v1/jobs", {"code": NOOP, "tenant": "bob", "delay_s": 3600})
    assert status == 201, body

    rep = json.loads(monitor(proc.url, "--json").stdout)
    assert {k: rep["queue"][k] for k in ("pending", "held", "scheduled", "backlog", "paused", "paused_tenants")} \
        == {"pending": 3, "held": 0, "scheduled": 1, "backlog": 4, "paused": False, "paused_tenants": []}, rep
    out = monitor(proc.url, "--once").stdout
    assert "  held 0  backlog 4" in out and "PAUSED" not in out, out

    assert api.post("/v1/queue/pause")[0] == 200
    assert api.post("/v1/queue/pause?tenant=bob")[0] == 200
    assert api.post("/v1/queue/pause?tenant=alice")[0] == 200
    rep = json.loads(monitor(proc.url, "--json").stdout)
    q = api.queue()
    for k in ("pending", "held", "scheduled", "backlog", "paused"):
        assert rep["queue"][k] == q[k], (k, rep["queue"], q)
    assert (rep["queue"]["held"], rep["queue"]["backlog"], rep["queue"]["paused"]) == (3, 4, True), rep
    assert sorted(rep["queue"]["paused_tenants"]) == ["alice", "bob"], rep
    out = monitor(proc.url, "--once").stdout
    paused = [line for line in out.splitlines() if line.startswith("PAUSED")]
    assert len(paused) == 2 and "the whole queue" in paused[0], out
    assert paused[1].startswith("PAUSED      tenants ") and "alice" in paused[1] and "bob" in paused[1], out
    assert "  held 3  backlog 4" in out, out

    assert api.post("/v1/queue/resume")[0] == 200
    assert api.post("/v1/queue/resume?tenant=alice")[0] == 200
    rep = json.loads(monitor(proc.url, "--json").stdout)
    assert (rep["queue"]["paused"], rep["queue"]["paused_tenants"]) == (False, ["bob"]), rep
    out = monitor(proc.url, "--once").stdout
    assert [line for line in out.splitlines() if line.startswith("PAUSED")] == \
        ["PAUSED      tenant bob (stratq resume --tenant T)"], out
