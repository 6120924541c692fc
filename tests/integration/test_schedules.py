"""Recurring jobs (docs/api.md, "Recurring jobs"; docs/protocol.md,
"Recurring jobs"): POST /v1/schedules and its routes, the fenced tick
(one job per fire however many API and worker replicas run), overlap,
pause, resume, delete, restarts and the missed fires that come to one, and
`stratq schedule`. Real API, real workers, real Redis. No timing
threshold: waits are on conditions with deadlines, and what happened when
is read from the records (a job's schedule_ms, created_ms, finished_ms)."""

import json

from conftest import PREFIX, TERMINAL, Api, run_cli, wait_for

NOOP = "def run(ctx):\n    return 1\n"
SLEEP = "import time\n\ndef run(ctx):\n    time.sleep(ctx.params['s'])\n    return 1\n"
DUE = f"{PREFIX}:schedules:due"


def create(api, body, status=201):
    st, out = api.post("/v1/schedules", body)
    assert st == status, (st, out)
    return out


def get(api, sid):
    st, out = api.get(f"/v1/schedules/{sid}")
    assert st == 200, (st, out)
    return out


def jobs_of(r, sid, fields=("schedule_ms", "created_ms", "finished_ms", "status", "tenant",
                            "priority")):
    """The records of the jobs schedule sid made, by schedule_ms."""
    ids = r.zrange(f"{PREFIX}:index:all", 0, -1)
    pipe = r.pipeline(transaction=False)
    for i in ids:
        pipe.hmget(f"{PREFIX}:job:{i}", "schedule", *fields)
    out = []
    for i, row in zip(ids, pipe.execute()):
        if row[0] == sid:
            rec = dict(zip(fields, row[1:]), id=i)
            for k in ("schedule_ms", "created_ms", "finished_ms"):
                rec[k] = int(rec[k]) if rec.get(k) else None
            out.append(rec)
    return sorted(out, key=lambda x: x["schedule_ms"])


def fires(api, sid):
    return get(api, sid)["fires"]


def test_an_interval_fires_one_job_per_tick_across_replicas(stack, r):
    """Every second, with 3 API replicas and 2 workers ticking: one job a
    fire, each for a due time of its own, a whole number of periods after
    the first, made no earlier than it was due."""
    apis = [stack.start_api().client for _ in range(3)]
    stack.start_workers(2)
    s = create(apis[0], {"every": "1s", "name": "tick", "overlap": "allow",
                         "job": {"code": NOOP, "tenant": "desk", "priority": "high"}})
    sid = s["id"]
    assert s["every_ms"] == 1000 and s["overlap"] == "allow" and s["paused"] is False
    assert s["next_ms"] == s["created_ms"] + 1000
    assert s["job"]["code"] == NOOP and s["tenant"] == "desk" and s["priority"] == 8
    for api in apis:
        assert get(api, sid)["id"] == sid
    wait_for(lambda: fires(apis[1], sid) >= 8, 60, "8 fires")
    st, paused = apis[2].post(f"/v1/schedules/{sid}/pause")
    assert st == 200 and paused["paused"] is True and paused["changed"] is True, paused
    assert paused["next_ms"] is None and r.zscore(DUE, sid) is None
    made = paused["fires"]
    jobs = jobs_of(r, sid)
    assert len(jobs) == made and paused["skipped"] == 0, (made, jobs)
    dues = [j["schedule_ms"] for j in jobs]
    assert len(set(dues)) == len(dues), f"two jobs for one fire: {dues}"
    first = s["next_ms"]
    for a, b in zip(dues, dues[1:]):
        assert b > a and (b - a) % 1000 == 0, dues
    assert all((d - first) % 1000 == 0 for d in dues), (first, dues)
    assert all(j["created_ms"] >= j["schedule_ms"] for j in jobs), jobs
    # A fire's job is made in the period it fired for (a late one only
    # when no replica ticked in time, which coalesces: at most one).
    for a, b in zip(jobs, jobs[1:]):
        assert a["created_ms"] < b["schedule_ms"] <= b["created_ms"], (a, b)
    assert all(j["tenant"] == "desk" and j["priority"] == "8" for j in jobs), jobs
    wait_for(lambda: all(j["status"] == "succeeded" for j in jobs_of(r, sid)), 60,
             "the jobs to succeed")
    rec = apis[0].job(jobs[0]["id"])
    assert rec["schedule"] == sid and rec["schedule_ms"] == jobs[0]["schedule_ms"], rec
    assert get(apis[0], sid)["last_job"] == jobs[-1]["id"]


def test_overlap_skip_makes_no_job_while_the_last_one_runs(stack, r):
    """A 1 s schedule whose job takes 2.5 s, on one worker: the worker
    ticks while it runs the job, and skips the fires that come meanwhile,
    so no job starts before the one before it ended."""
    api = stack.start_api().client
    stack.start_worker()
    sid = create(api, {"every": "1s", "job": {"code": SLEEP, "params": {"s": 2.5}}})["id"]
    wait_for(lambda: get(api, sid)["skipped"] >= 3 and get(api, sid)["fires"] >= 2, 90,
             lambda: f"3 skipped fires and 2 jobs: {get(api, sid)}")
    api.post(f"/v1/schedules/{sid}/pause")
    wait_for(lambda: all(j["status"] in TERMINAL for j in jobs_of(r, sid)), 60,
             "its jobs to end")
    jobs = jobs_of(r, sid)
    assert len(jobs) == get(api, sid)["fires"] >= 2
    for a, b in zip(jobs, jobs[1:]):
        assert b["created_ms"] >= a["finished_ms"], (a, b)


def test_pause_resume_and_delete(stack, r):
    """Paused, a schedule is out of the due set and makes no job while
    another keeps firing; resumed, it fires again from now; deleted, it is
    gone and its jobs stay."""
    api = stack.start_api().client
    stack.start_worker()
    sid = create(api, {"every": "1s", "overlap": "allow", "job": {"code": NOOP}})["id"]
    clock = create(api, {"every": "1s", "overlap": "allow", "job": {"code": NOOP}})["id"]
    wait_for(lambda: fires(api, sid) >= 1, 60, "a first fire")
    st, p = api.post(f"/v1/schedules/{sid}/pause")
    assert st == 200 and p["paused"] is True and p["changed"] is True, p
    st, again = api.post(f"/v1/schedules/{sid}/pause")
    assert st == 200 and again["changed"] is False, again
    n = len(jobs_of(r, sid))
    assert n == p["fires"]
    ticks = fires(api, clock)
    wait_for(lambda: fires(api, clock) >= ticks + 3, 60, "3 more fires of another schedule")
    assert len(jobs_of(r, sid)) == n and get(api, sid)["paused"] is True
    st, res = api.post(f"/v1/schedules/{sid}/resume")
    assert st == 200 and res["paused"] is False and res["changed"] is True, res
    assert res["next_ms"] > p["created_ms"] and r.zscore(DUE, sid) is not None
    wait_for(lambda: len(jobs_of(r, sid)) > n, 60, "a fire after the resume")
    assert all(j["schedule_ms"] >= res["next_ms"] for j in jobs_of(r, sid)[n:])
    st, d = api.request("DELETE", f"/v1/schedules/{sid}")
    assert st == 200 and d == {"id": sid, "deleted": True}, d
    assert api.get(f"/v1/schedules/{sid}")[0] == 404
    assert api.request("DELETE", f"/v1/schedules/{sid}")[0] == 404
    assert api.post(f"/v1/schedules/{sid}/resume")[0] == 404
    assert r.zscore(DUE, sid) is None and not r.exists(f"{PREFIX}:schedule:{sid}")
    left = len(jobs_of(r, sid))
    ticks = fires(api, clock)
    wait_for(lambda: fires(api, clock) >= ticks + 3, 60, "3 more fires of another schedule")
    assert len(jobs_of(r, sid)) == left
    listed = [s["id"] for s in api.get("/v1/schedules")[1]["schedules"]]
    assert listed == [clock]


def test_a_restart_continues_and_missed_fires_come_to_one(stack, r):
    """Every worker and the API stop; the schedule's due time is then ten
    periods past. Started again, the workers make one job for the missed
    fires, then go on from the first fire after that tick."""
    api_proc = stack.start_api()
    workers = stack.start_workers(2)
    sid = create(api_proc.client, {"every": "1s", "overlap": "allow", "job": {"code": NOOP}})["id"]
    wait_for(lambda: fires(api_proc.client, sid) >= 2, 60, "2 fires")
    for p in [*workers, api_proc]:
        assert stack.stop(p) == 0, p.describe()
    before = jobs_of(r, sid)
    due = int(r.zscore(DUE, sid))
    missed = due - 10_000
    r.zadd(DUE, {sid: missed})
    r.hset(f"{PREFIX}:schedule:{sid}", "next_ms", missed)
    api = stack.start_api().client
    stack.start_workers(2)
    wait_for(lambda: len(jobs_of(r, sid)) >= len(before) + 2, 60, "2 fires after the restart")
    old = {j["id"] for j in before}
    after = sorted((j for j in jobs_of(r, sid) if j["id"] not in old), key=lambda j: j["created_ms"])
    assert after[0]["schedule_ms"] == missed, after
    # No job for the 9 fires between: the next one is the first after the
    # catch-up's tick, in phase.
    assert after[0]["created_ms"] < after[1]["schedule_ms"] <= after[0]["created_ms"] + 1000, after
    assert (after[1]["schedule_ms"] - missed) % 1000 == 0
    assert get(api, sid)["last_due_ms"] >= after[1]["schedule_ms"]


def test_cron_next_fire(stack):
    """A cron schedule's next_ms is cron's next time after its creation, in
    its time zone."""
    api = stack.start_api().client
    s = create(api, {"cron": "*/1 * * * *", "job": {"code": NOOP}})
    assert s["tz"] == "UTC" and s["every"] is None
    assert s["next_ms"] == (s["created_ms"] // 60000 + 1) * 60000, s
    # Kolkata is UTC+05:30 (no DST): its whole hours are UTC's half hours.
    s = create(api, {"cron": "0 * * * *", "tz": "Asia/Kolkata", "job": {"code": NOOP}})
    half = (s["created_ms"] - 1_800_000) // 3_600_000 * 3_600_000 + 1_800_000
    assert s["next_ms"] == half + 3_600_000, s
    s = create(api, {"cron": "@daily", "tz": "Asia/Kolkata", "job": {"code": NOOP}})
    assert s["next_ms"] % 86_400_000 == 86_400_000 - 19_800_000, s
    assert 0 < s["next_ms"] - s["created_ms"] <= 86_400_000


def test_bad_schedules_are_refused_naming_the_field(stack, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text("admin-token\nalice-token tenant=alice\n")
    env = {"STRATQ_API_TOKENS_FILE": str(tokens)}
    proc = stack.start_api(env=env, token="admin-token")
    api = proc.client
    job = {"code": NOOP}
    cases = [
        ({"job": job}, "give either 'cron'"),
        ({"cron": "* * * * *", "every": "1m", "job": job}, "not both"),
        ({"cron": "61 * * * *", "job": job}, "cron: minute: 61 is out of range 0-59"),
        ({"cron": "0 0 30 2 *", "job": job}, "cron: "),
        ({"cron": "* * * * *", "tz": "Mars/Olympus", "job": job}, "tz: unknown time zone"),
        ({"every": "5 minutes", "job": job}, "every: "),
        ({"every": "0s", "job": job}, "every: "),
        ({"every": "1m", "tz": "UTC", "job": job}, "tz: "),
        ({"every": 60, "job": job}, "field 'every' must be a string"),
        ({"every": "1m", "overlap": "queue", "job": job}, "field 'overlap'"),
        ({"every": "1m", "name": "", "job": job}, "field 'name'"),
        ({"every": "1m", "code": NOOP}, "unknown field 'code'"),
        ({"every": "1m"}, "field 'job' must be an object"),
        ({"every": "1m", "job": {"code": 5}}, "job: field 'code'"),
        ({"every": "1m", "job": {"code": NOOP, "priority": 12}}, "job: field 'priority'"),
        ({"every": "1m", "job": {"code": NOOP, "run_at": 5}}, "job: fields 'run_at' and 'delay_s'"),
        ({"every": "1m", "job": {"code": NOOP, "id": "x"}}, "job: field 'id'"),
    ]
    for body, msg in cases:
        st, out = api.post("/v1/schedules", body)
        assert st == 400 and msg in out["error"], (body, st, out)
    st, out = api.request("POST", "/v1/schedules", raw=b"{not json")
    assert st == 400, out
    assert api.get("/v1/schedules")[1] == {"schedules": [], "next_cursor": None}
    # A token that names a tenant schedules as that tenant only, and sees
    # and changes its own schedules only.
    alice = Api(proc.url, token="alice-token")
    st, out = alice.post("/v1/schedules", {"every": "1h", "job": {"code": NOOP, "tenant": "bob"}})
    assert st == 403, out
    mine = create(alice, {"every": "1h", "job": {"code": NOOP}})
    assert mine["tenant"] == "alice"
    other = create(api, {"every": "1h", "job": {"code": NOOP, "tenant": "bob"}})
    assert [s["id"] for s in alice.get("/v1/schedules")[1]["schedules"]] == [mine["id"]]
    assert alice.get(f"/v1/schedules/{other['id']}")[0] == 404
    assert alice.post(f"/v1/schedules/{other['id']}/pause")[0] == 404
    assert alice.request("DELETE", f"/v1/schedules/{other['id']}")[0] == 404
    assert len(api.get("/v1/schedules")[1]["schedules"]) == 2


def listed(api, query=""):
    """Every schedule of GET /v1/schedules?QUERY, following next_cursor,
    and the number of pages."""
    out, cursor, pages = [], None, 0
    while True:
        path = "/v1/schedules?" + query + (f"&cursor={cursor}" if cursor else "")
        st, body = api.get(path)
        assert st == 200, (path, st, body)
        out += [s["id"] for s in body["schedules"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return out, pages
        assert pages < 2000, "the cursor never ends"


def test_the_schedule_listing_pages(stack, r, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text("admin-token\nalice-token tenant=alice\n")
    proc = stack.start_api(env={"STRATQ_API_TOKENS_FILE": str(tokens)}, token="admin-token")
    api, alice = proc.client, Api(proc.url, token="alice-token")
    made = [create(api, {"every": "1h", "name": f"s{i}",
                         "job": {"code": NOOP, "tenant": "alice" if i % 3 == 0 else "bob"}})["id"]
            for i in range(1003)]
    # Oldest first: by creation ms, then id (the zset's order).
    tenant_of = {sid: "alice" if i % 3 == 0 else "bob" for i, sid in enumerate(made)}
    made = r.zrange(f"{PREFIX}:schedules", 0, -1)
    assert sorted(made) == sorted(tenant_of)
    # One page by default (100), oldest first; the cursor walks them all.
    st, body = api.get("/v1/schedules")
    assert st == 200 and [s["id"] for s in body["schedules"]] == made[:100], body["next_cursor"]
    assert listed(api, "limit=7") == (made, 144)
    assert listed(api, "limit=1000") == (made, 2)
    # A tenant's token pages through its own; its pages may be short.
    mine = [sid for sid in made if tenant_of[sid] == "alice"]
    assert listed(alice, "limit=10")[0] == mine
    # A cursor whose schedule was deleted meanwhile goes on after it.
    st, body = api.get("/v1/schedules?limit=5")
    cursor = body["next_cursor"]
    assert api.request("DELETE", f"/v1/schedules/{made[4]}")[0] == 200
    st, body = api.get(f"/v1/schedules?limit=3&cursor={cursor}")
    assert [s["id"] for s in body["schedules"]] == made[5:8], body
    for bad in ("limit=0", "limit=1001", "limit=x", "cursor=nope", "cursor=12:a%20b", "cursor=:s1"):
        st, body = api.get(f"/v1/schedules?{bad}")
        assert st == 400 and bad.split("=")[0] in body["error"], (bad, body)
    # The CLI lists every one, whatever the pages.
    res = run_cli(["schedule", "list", "--json"], proc.url, env={"STRATQ_API_TOKEN": "admin-token"})
    assert res.returncode == 0, res.stderr
    assert [s["id"] for s in json.loads(res.stdout)["schedules"]] == made[:4] + made[5:]


def test_cli_schedule_commands(stack, tmp_path):
    api = stack.start_api()
    stack.start_worker()
    f = tmp_path / "noop.py"
    f.write_text(NOOP)
    res = run_cli(["schedule", "add", "--every", "1s", str(f), "--name", "nightly",
                   "--params", '{"a": 1}', "--tenant", "desk", "--priority", "high",
                   "--overlap", "allow"], api.url)
    assert res.returncode == 0, res.stderr
    sid = res.stdout.strip()
    s = get(api.client, sid)
    assert s["name"] == "nightly" and s["job"]["params"] == {"a": 1} and s["tenant"] == "desk"
    assert s["priority"] == 8 and s["overlap"] == "allow"
    res = run_cli(["schedule", "list"], api.url)
    assert res.returncode == 0 and sid in res.stdout and "nightly" in res.stdout, res.stdout
    assert "every 1s" in res.stdout
    wait_for(lambda: get(api.client, sid)["fires"] >= 1, 60, "a fire")
    res = run_cli(["schedule", "pause", sid], api.url)
    assert res.returncode == 0 and res.stdout.strip() == f"paused {sid}", res.stdout
    assert get(api.client, sid)["paused"] is True
    res = run_cli(["schedule", "resume", sid, "--json"], api.url)
    assert res.returncode == 0 and '"paused": false' in res.stdout, res.stdout
    res = run_cli(["schedule", "show", sid], api.url)
    assert res.returncode == 0 and f'"id": "{sid}"' in res.stdout, res.stdout
    res = run_cli(["schedule", "list", "--json"], api.url)
    assert res.returncode == 0 and f'"id": "{sid}"' in res.stdout, res.stdout
    res = run_cli(["schedule", "rm", sid], api.url)
    assert res.returncode == 0 and res.stdout.strip() == f"deleted {sid}", res.stdout
    assert api.client.get(f"/v1/schedules/{sid}")[0] == 404
    res = run_cli(["schedule", "add", "--cron", "61 * * * *", str(f)], api.url)
    assert res.returncode == 3 and "cron: minute: 61" in res.stderr, res.stderr
    res = run_cli(["schedule", "rm", sid], api.url)
    assert res.returncode == 3 and "no schedule" in res.stderr, res.stderr
    res = run_cli(["schedule", "frobnicate"], api.url)
    assert res.returncode == 2 and "usage" in res.stderr
    res = run_cli(["schedule", "add", "--every", "1m"], api.url)
    assert res.returncode == 2
