"""The API's tenants room (src/api/tenants.c): GET /v1/tenants, pausing
and resuming the queue or one tenant (over HTTP and with the CLI's pause,
resume and tenants), the weights and caps of STRATQ_TENANTS and of the
tokens file, and what a tenant's token may pause."""

import time

from conftest import PREFIX, QUEUE, describe_run, parse_json, run_cli, wait_for

NOOP = "def run(ctx):\n    return 1\n"
SLEEP = "import time\n\ndef run(ctx):\n    time.sleep(ctx.params.get('s', 0.3))\n    return 1\n"


# --------------------------------------------------------------------------
# Over HTTP
# --------------------------------------------------------------------------


def test_pause_and_resume_the_queue_and_a_tenant(stack, r):
    api = stack.start_api().client
    stack.start_worker()
    running = api.submit({"code": SLEEP, "params": {"s": 1.0}, "tenant": "a"})
    api.wait_status(running, "running")
    status, body = api.post("/v1/queue/pause")
    assert status == 200 and body == {"paused": True, "changed": True}, body
    assert api.post("/v1/queue/pause")[1]["changed"] is False
    held = api.submit({"code": NOOP, "tenant": "a"})
    # The running job finishes; nothing new starts: the new job is held.
    assert api.wait_job(running)["status"] == "succeeded"
    q = api.queue()
    assert q["paused"] is True and q["pending"] == 0 and q["held"] == 1 and q["backlog"] == 1, q
    wait_for(lambda: api.job(held)["status"] == "queued" and r.llen(QUEUE) == 0, 10, "held")
    # A job pushed straight onto the list (another producer) waits too.
    r.hset(f"{PREFIX}:job:direct1", mapping={"status": "queued", "spec": '{"code": "def run(ctx):\\n    return 2\\n"}',
                                               "attempts": 0, "created_ms": int(time.time() * 1000)})
    r.lpush(QUEUE, "direct1")
    wait_for(lambda: r.llen(QUEUE) == 0 and r.llen(f"{PREFIX}:fair:parked") == 2, 10,
             "the worker to park the direct job")
    assert api.job("direct1")["status"] == "queued"
    # Pausing tenant a alone and resuming the queue: b's job runs, a's waits.
    assert api.post("/v1/queue/pause?tenant=a")[0] == 200
    assert api.post("/v1/queue/resume")[1] == {"paused": False, "changed": True}
    other = api.submit({"code": NOOP, "tenant": "b"})
    assert api.wait_job(other)["status"] == "succeeded"
    assert api.wait_job("direct1")["status"] == "succeeded"
    assert api.job(held)["status"] == "queued"
    q = api.queue()
    assert q["paused"] is False and q["paused_tenants"] == ["a"], q
    tenants = {t["tenant"]: t for t in api.get("/v1/tenants")[1]["tenants"]}
    assert tenants["a"]["paused"] and tenants["a"]["waiting"] == 1 and not tenants["b"]["paused"]
    assert api.post("/v1/queue/resume?tenant=a")[0] == 200
    assert api.wait_job(held)["status"] == "succeeded"
    q = api.queue()
    assert q["held"] == 0 and q["pending"] == 0 and q["paused_tenants"] == [], q


def test_a_token_names_its_tenant_and_its_cap(stack, r, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text("# a comment\nadmin-token\nalice-token tenant=alice max_running=1 max_priority=5\n")
    env = {"STRATQ_API_TOKENS_FILE": str(tokens)}
    api = stack.start_api(env=env, token="alice-token").client
    jid = api.submit({"code": NOOP})
    assert api.job(jid)["tenant"] == "alice"
    status, body = api.post("/v1/jobs", {"code": NOOP, "tenant": "bob"})
    assert status == 403 and "'alice'" in body["error"], body
    # Her token may not jump the queue past priority 5.
    status, body = api.post("/v1/jobs", {"code": NOOP, "priority": "high"})
    assert status == 403 and "'priority'" in body["error"], body
    assert api.post("/v1/jobs", {"code": NOOP, "priority": 5})[0] == 201
    # alice's token may pause alice only.
    assert api.post("/v1/queue/pause")[0] == 403
    assert api.post("/v1/queue/pause?tenant=alice")[0] == 200
    admin = stack.start_api(env=env, token="admin-token").client
    jid = admin.submit({"code": NOOP, "tenant": "bob"})
    assert admin.job(jid)["tenant"] == "bob"
    jid = admin.submit({"code": NOOP})
    assert admin.job(jid)["tenant"] == "default"
    assert admin.post("/v1/jobs", {"code": NOOP, "priority": 9})[0] == 201
    wait_for(lambda: {t["tenant"]: t for t in admin.get("/v1/tenants")[1]["tenants"]}
             .get("alice", {}).get("max_running") == 1, 10, "alice's cap from the tokens file")


# --------------------------------------------------------------------------
# With the CLI
# --------------------------------------------------------------------------


def cli_ok(api_url, *args):
    res = run_cli(list(args), api_url)
    assert res.returncode == 0, describe_run(res)
    return res


def test_pause_resume_and_tenants(stack):
    proc = stack.start_api(env={"STRATQ_TENANTS": "alice:weight=2,max_running=3"})
    for t in ("alice", "alice", "bob"):
        proc.client.submit({"code": NOOP, "tenant": t})

    assert cli_ok(proc.url, "pause").stdout == "queue paused\n"
    assert cli_ok(proc.url, "pause").stdout == "queue paused (it was already)\n"
    out = cli_ok(proc.url, "queue").stdout
    assert "3 held" in out and "backlog 3" in out and "PAUSED" in out, out
    assert parse_json(cli_ok(proc.url, "pause", "--json")) == {"paused": True, "changed": False}
    assert parse_json(cli_ok(proc.url, "tenants", "--json"))["paused"] is True
    assert cli_ok(proc.url, "resume").stdout == "queue resumed\n"
    assert proc.client.queue()["paused"] is False

    assert cli_ok(proc.url, "pause", "--tenant", "bob").stdout == "tenant bob paused\n"
    out = cli_ok(proc.url, "queue").stdout
    assert "paused tenants: bob" in out and "PAUSED" not in out, out
    body = parse_json(cli_ok(proc.url, "tenants", "--json"))
    rows = {t["tenant"]: t for t in body["tenants"]}
    assert (rows["bob"]["paused"], rows["alice"]["paused"], body["paused"]) == (True, False, False), body

    # The table: a line for the queue, a header, a row a tenant.
    lines = cli_ok(proc.url, "tenants").stdout.splitlines()
    assert lines[0] == "queue: 3 waiting, 0 held", lines
    assert lines[1].split() == ["TENANT", "WAITING", "RUNNING", "WEIGHT", "MAX_RUNNING", "PAUSED"], lines
    table = {line.split()[0]: line.split()[1:] for line in lines[2:]}
    assert table == {"alice": ["2", "0", "2", "3", "no"], "bob": ["1", "0", "1", "-", "yes"]}, lines

    assert cli_ok(proc.url, "resume", "--tenant", "bob").stdout == "tenant bob resumed\n"
    assert proc.client.queue()["paused_tenants"] == []
    res = run_cli(["pause", "--tenant", "no/such"], proc.url)
    assert res.returncode == 3 and "400" in res.stderr and "tenant" in res.stderr, describe_run(res)
    res = run_cli(["pause", "extra"], proc.url)
    assert res.returncode == 2, describe_run(res)


def test_a_tenants_token_may_pause_its_own_tenant_only(stack, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text("admin-token\nalice-token tenant=alice\n")
    proc = stack.start_api(env={"STRATQ_API_TOKENS_FILE": str(tokens)})
    alice = {"STRATQ_API_TOKEN": "alice-token"}
    res = run_cli(["pause", "--tenant", "alice"], proc.url, env=alice)
    assert res.returncode == 0 and res.stdout == "tenant alice paused\n", describe_run(res)
    for args in (["pause"], ["resume", "--tenant", "bob"]):
        res = run_cli(args, proc.url, env=alice)
        assert res.returncode == 3 and "403" in res.stderr, describe_run(res)
    res = run_cli(["tenants", "--json"], proc.url, env={"STRATQ_API_TOKEN": "admin-token"})
    assert res.returncode == 0, describe_run(res)
