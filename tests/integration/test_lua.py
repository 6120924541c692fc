"""The Lua scripts of src/queue/lua/, run alone against a real Redis.

Each test loads one script as the worker does and drives it with plain
commands, so the transitions (and the fencing of completion on (worker,
attempt)) are checked without any stratq process in the way. The script's
text comes from ``stratq api --lua NAME``: the status table generated from
src/queue/status.h, lib.lua's helpers, then the script file."""

import functools
import json
import subprocess

import pytest

from conftest import EVENTS_CHANNEL, PREFIX, QUEUE, REPO_ROOT, Subscriber, require_binary

JOB_PREFIX = f"{PREFIX}:job:"


@functools.cache
def source(name):
    res = subprocess.run(
        [str(require_binary()), "api", "--lua", name],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30,
    )
    assert res.returncode == 0, f"stratq api --lua {name}: {res.stderr}"
    return res.stdout


def script(r, name):
    """A script as the worker loads it."""
    return r.register_script(source(name))


def enqueue(r, job_id, spec=None, client_id=True, publish="PUBLISH", tenant="", priority=5,
            run_at=0):
    """enqueue.lua; with no tenant, the id goes straight onto the queue
    list (another producer's way, docs/protocol.md)."""
    spec = spec or {"code": "def run(ctx):\n    return 1\n"}
    return script(r, "enqueue")(
        keys=[JOB_PREFIX + job_id, QUEUE, f"{PREFIX}:index:all", f"{PREFIX}:scheduled",
              f"{PREFIX}:index:scheduled"],
        args=[job_id, json.dumps(spec), 1000, EVENTS_CHANNEL, publish, 1 if client_id else 0,
              tenant, priority, run_at, PREFIX],
    )


def take(r, worker, publish="PUBLISH", now=2000):
    """BLMOVE as the worker does, then start.lua."""
    processing = f"{PREFIX}:processing:{worker}"
    job_id = r.blmove(QUEUE, processing, 1, "RIGHT", "LEFT")
    assert job_id is not None
    reply = script(r, "start")(
        keys=[JOB_PREFIX + job_id, processing, QUEUE],
        args=[job_id, worker, now, EVENTS_CHANNEL, publish, PREFIX],
    )
    if reply[0] == "run":  # a ticket's job is the one start.lua names
        job_id = reply[5]
    return job_id, reply


def complete(r, job_id, worker, attempt, status="succeeded", result="42", publish="PUBLISH"):
    job = JOB_PREFIX + job_id
    return script(r, "complete")(
        keys=[job, f"{PREFIX}:processing:{worker}", f"{job}:stdout", f"{job}:stderr", f"{job}:log",
              f"{PREFIX}:scheduled", f"{PREFIX}:dead", f"{PREFIX}:index:{status}",
              f"{PREFIX}:index:scheduled", f"{PREFIX}:index:dead", QUEUE],
        args=[job_id, worker, attempt, 3000, EVENTS_CHANNEL, publish, 60, 120, 1, 0, status, 0,
              PREFIX, "result", result],
    )


def lost(r, job_id, worker, counts):
    return script(r, "lost")(
        keys=[f"{PREFIX}:processing:{worker}", QUEUE, JOB_PREFIX + job_id, f"{PREFIX}:dead",
              f"{PREFIX}:index:dead"],
        args=[job_id, worker, 2500, EVENTS_CHANNEL, "PUBLISH", 3, 120, 1 if counts else 0, PREFIX],
    )


def test_protocol_md_scripts_table_is_the_binarys():
    """docs/protocol.md's table of the scripts' KEYS and ARGV is the one the
    binary checks every call against (`stratq api --scripts`), row for row."""
    res = subprocess.run([str(require_binary()), "api", "--scripts"], stdin=subprocess.DEVNULL,
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    want = res.stdout.splitlines()
    doc = (REPO_ROOT / "docs" / "protocol.md").read_text().split("### Scripts\n", 1)[1]
    lines = doc.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| script |"))
    got = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        got.append(line)
    expected = "\n".join(want)
    assert got == want, f"docs/protocol.md's scripts table should read:\n{expected}"
    names = sorted(p.stem for p in (REPO_ROOT / "src" / "queue" / "lua").glob("*.lua"))
    assert sorted(row.split("`")[1].removesuffix(".lua") for row in want[2:]) == \
        [n for n in names if n != "lib"]


def test_enqueue_is_idempotent_per_id(r):
    assert enqueue(r, "j1") == [1, "queued"]
    assert enqueue(r, "j1", {"code": "other"}) == [0, "queued", None]
    assert r.llen(QUEUE) == 1
    assert json.loads(r.hget(JOB_PREFIX + "j1", "spec"))["code"] != "other"
    assert r.zscore(f"{PREFIX}:index:all", "j1") == 1000
    # An id the API made itself (128 random bits) is not checked first.
    assert enqueue(r, "fresh", client_id=False) == [1, "queued"]
    assert r.hget(JOB_PREFIX + "fresh", "status") == "queued" and r.llen(QUEUE) == 2
    # An existing job's tenant comes back, for the API to check the token's.
    assert enqueue(r, "t1", tenant="alice") == [1, "queued"]
    assert enqueue(r, "t1", tenant="bob") == [0, "queued", "alice"]


def test_start_then_complete_writes_outcome(r):
    enqueue(r, "j1")
    job_id, reply = take(r, "w1")
    assert reply[0] == "run" and reply[1] == 1
    assert r.hget(JOB_PREFIX + job_id, "status") == "running"
    assert complete(r, job_id, "w1", 1) == 1
    job = r.hgetall(JOB_PREFIX + job_id)
    assert job["status"] == "succeeded" and job["result"] == "42"
    assert job["finished_ms"] == "3000"
    # Given whole ms (a worker in another language may), µs are ms * 1000.
    assert (job["started_ms"], job["started_us"]) == ("2000", "2000000"), job
    assert r.llen(f"{PREFIX}:processing:w1") == 0
    assert 0 < r.ttl(JOB_PREFIX + job_id) <= 60


def test_start_keeps_the_microseconds_of_the_time_it_is_given(r):
    """stratq's worker gives ms with a fraction (jobq_build_start): the
    record keeps started_ms whole and started_us exact, at today's epoch
    times (16 digits, within a double's 53 bits)."""
    enqueue(r, "j1")
    job_id, _ = take(r, "w1", now="1796650000123.457")
    job = r.hgetall(JOB_PREFIX + job_id)
    assert (job["started_ms"], job["started_us"]) == ("1796650000123", "1796650000123457"), job


def test_completion_is_fenced_on_the_processing_list(r):
    enqueue(r, "j1")
    take(r, "w1")
    # w1 is presumed dead: the reaper gives its job back to the queue and w2
    # runs it as attempt 2.
    assert lost(r, "j1", "w1", counts=True) == "requeued"
    _, reply = take(r, "w2")
    assert reply[1] == 2
    # The late result of w1 is discarded: the id left its processing list.
    assert complete(r, "j1", "w1", 1, result='"late"') == 0
    assert r.hget(JOB_PREFIX + "j1", "status") == "running"
    assert r.hget(JOB_PREFIX + "j1", "lost") == "1"
    # Only the current attempt's result stands.
    assert complete(r, "j1", "w2", 2, result='"fresh"') == 1
    assert r.hget(JOB_PREFIX + "j1", "result") == '"fresh"'
    # The same worker and attempt again (a retried call): acknowledged as
    # already recorded, and nothing changes.
    assert complete(r, "j1", "w2", 2, result='"again"') == 2
    assert r.hget(JOB_PREFIX + "j1", "result") == '"fresh"'


def test_start_skips_jobs_no_longer_queued_and_drops_missing(r):
    enqueue(r, "j1")
    r.hset(JOB_PREFIX + "j1", "status", "cancelled")
    _, reply = take(r, "w1")
    assert reply == ["skip", "cancelled"]
    r.lpush(QUEUE, "ghost")
    _, reply = take(r, "w1")
    assert reply == ["missing"]
    assert r.llen(f"{PREFIX}:processing:w1") == 0


def test_a_stopping_worker_gives_its_jobs_back_uncounted(r):
    enqueue(r, "j1")
    enqueue(r, "j2")
    job_id, _ = take(r, "w1")
    r.zadd(f"{PREFIX}:workers", {"w1": 1})
    r.hset(f"{PREFIX}:worker:w1", "state", "busy")
    # What the worker does as it stops: lost.lua for each id of its list,
    # the loss not counted, then forget.lua.
    assert lost(r, job_id, "w1", counts=False) == "requeued"
    left = script(r, "forget")(
        keys=[f"{PREFIX}:workers", f"{PREFIX}:worker:w1", f"{PREFIX}:processing:w1"], args=["w1"])
    assert left == 0
    job = r.hgetall(JOB_PREFIX + job_id)
    # The attempt stays counted, so (worker, attempt) pairs never repeat;
    # the loss does not count against STRATQ_MAX_DELIVERIES.
    assert job["status"] == "queued" and job["attempts"] == "1" and "lost" not in job
    # Given back to the head of the queue: it is the next one taken.
    assert r.lindex(QUEUE, -1) == job_id
    assert r.zscore(f"{PREFIX}:workers", "w1") is None
    assert not r.exists(f"{PREFIX}:worker:w1")


def test_a_job_that_loses_its_worker_too_often_is_dead(r):
    enqueue(r, "j1")
    for n in (1, 2):
        take(r, "w1")
        assert lost(r, "j1", "w1", counts=True) == "requeued"
        assert r.hget(JOB_PREFIX + "j1", "lost") == str(n)
    take(r, "w1")
    assert lost(r, "j1", "w1", counts=True) == "dead"
    job = r.hgetall(JOB_PREFIX + "j1")
    assert job["status"] == "dead" and job["dead_reason"] == "worker lost 3 times", job
    assert r.zscore(f"{PREFIX}:dead", "j1") == 2500
    assert r.zscore(f"{PREFIX}:index:dead", "j1") == 2500
    assert r.llen(QUEUE) == 0 and r.llen(f"{PREFIX}:processing:w1") == 0
    # Not this worker's job (any more): untouched.
    assert lost(r, "j1", "w1", counts=True) == ""


def page(r, index, status, limit, cursor=("+inf", ""), own=False, count=None, tenant=""):
    """A listing page as the API reads it: list.lua, then page.lua."""
    key = f"{PREFIX}:index:{index}"
    found = script(r, "list")(keys=[key], args=[*cursor, count or limit + 4])
    ids = found[1::2]
    return script(r, "page")(
        keys=[key, *(JOB_PREFIX + i for i in ids)],
        args=[status, 1 if own else 0, limit, found[0], tenant, *found[1:]],
    )


def page_ids(got):
    """The ids of a page.lua reply (9 entries a job, after the cursor)."""
    return [got[i] for i in range(2, len(got), 9)]


def test_list_filters_the_all_index_for_statuses_without_their_own(r):
    for i in range(5):
        enqueue(r, f"j{i}")
    r.zadd(f"{PREFIX}:index:all", {f"j{i}": 1000 + i for i in range(5)})
    for i in (1, 3):
        r.hset(JOB_PREFIX + f"j{i}", "status", "succeeded")
    got = page(r, "all", "succeeded", 10)
    assert got[:2] == ["", ""]  # the end: no cursor
    assert page_ids(got) == ["j3", "j1"]
    # A page that fills up carries the cursor of its last job.
    got = page(r, "all", "queued", 1)
    assert got[2] == "j4" and got[:2] == ["1004", "j4"]
    got = page(r, "all", "queued", 10, cursor=("1004", "j4"))
    assert page_ids(got) == ["j2", "j0"] and got[:2] == ["", ""]
    # Reading stops at the ids it was given: a short page with a cursor.
    got = page(r, "all", "queued", 10, count=2)
    assert page_ids(got) == ["j4"] and got[:2] == ["1003", "j3"]
    # A status index's entry whose job has left that status is dropped.
    r.zadd(f"{PREFIX}:index:failed", {"j1": 5, "j2": 6})
    r.hset(JOB_PREFIX + "j2", "status", "failed")
    got = page(r, "failed", "failed", 10, own=True)
    assert page_ids(got) == ["j2"]
    assert r.zrange(f"{PREFIX}:index:failed", 0, -1) == ["j2"]


def test_list_filters_by_tenant_and_gives_each_jobs_tenant(r):
    for i in range(6):
        enqueue(r, f"j{i}", tenant=("alice", "bob", "")[i % 3])
    r.zadd(f"{PREFIX}:index:all", {f"j{i}": 1000 + i for i in range(6)})
    got = page(r, "all", "", 10)
    assert page_ids(got) == ["j5", "j4", "j3", "j2", "j1", "j0"]
    # The tenant is each job's 9th entry: "" for a job pushed without one.
    assert [got[i + 8] for i in range(2, len(got), 9)] == ["", "bob", "alice", "", "bob", "alice"]
    assert [got[i + 7] for i in range(2, len(got), 9)] == [str(1005 - i) for i in range(6)]
    got = page(r, "all", "", 10, tenant="alice")
    assert page_ids(got) == ["j3", "j0"] and got[:2] == ["", ""]
    # With a status too; and a page that fills up has the cursor of its last job.
    r.hset(JOB_PREFIX + "j0", "status", "failed")
    assert page_ids(page(r, "all", "queued", 10, tenant="alice")) == ["j3"]
    got = page(r, "all", "", 1, tenant="bob")
    assert page_ids(got) == ["j4"] and got[:2] == ["1004", "j4"]
    assert page_ids(page(r, "all", "", 10, tenant="carol")) == []


def test_metrics_counts(r):
    for i in range(3):
        enqueue(r, f"j{i}")
    enqueue(r, "f1", tenant="t")
    take(r, "w1")
    r.zadd(f"{PREFIX}:workers", {"w1": 1, "w2": 1})
    r.zadd(f"{PREFIX}:dead", {"d": 1})
    r.sadd(f"{PREFIX}:fair:paused", "other")
    # The API reads the workers first, then names their processing lists.
    workers = r.zrange(f"{PREFIX}:workers", 0, -1)
    r.hset(f"{PREFIX}:stats", mapping={"submitted": 3, "duration:bucket:2": 1})
    reply = script(r, "metrics")(
        keys=[QUEUE, f"{PREFIX}:workers", f"{PREFIX}:scheduled", f"{PREFIX}:dead", f"{PREFIX}:stats",
              *(f"{PREFIX}:processing:{w}" for w in workers)],
        args=[PREFIX],
    )
    # j0 was taken; j1, j2 and f1's ticket wait; f1 is in its tenant's backlog.
    assert reply[:5] == [3, 1, 0, 1, 2]
    assert reply[5][:3] == ["0.005", "0.01", "0.025"] and len(reply[5]) == 16, reply
    stats = dict(zip(reply[6][::2], reply[6][1::2]))
    assert stats == {"submitted": "3", "duration:bucket:2": "1"}, reply
    # f1's tenant: 1 waiting, none running.
    assert reply[7:] == [1, 0, ["other"], ["t", 1, 0]], reply


def test_events_are_published_with_the_callers_command(r, redis_server):
    """The scripts publish with the command their caller names: PUBLISH
    (plain Redis; 6.2 has no SPUBLISH), heard by SUBSCRIBE; SPUBLISH (what
    stratq sends on Redis Cluster, sharded pub/sub), heard by SSUBSCRIBE
    and not by SUBSCRIBE."""
    if int(r.info("server")["redis_version"].split(".")[0]) < 7:
        pytest.skip("sharded pub/sub needs Redis 7")
    plain = Subscriber(redis_server.port, EVENTS_CHANNEL)
    sharded = Subscriber(redis_server.port, EVENTS_CHANNEL, "SSUBSCRIBE")
    try:
        assert sharded.reply == ["ssubscribe", EVENTS_CHANNEL, 1]
        enqueue(r, "j1")
        assert plain.events() == [{"id": "j1", "status": "queued"}]
        assert sharded.events() == []
        enqueue(r, "j2", publish="SPUBLISH")
        job_id, _ = take(r, "w1", publish="SPUBLISH")
        assert complete(r, job_id, "w1", 1, publish="SPUBLISH") == 1
        assert [(e["id"], e["status"]) for e in sharded.events()] == \
            [("j2", "queued"), ("j1", "running"), ("j1", "succeeded")]
        assert plain.events() == []
    finally:
        plain.close()
        sharded.close()


def schedule(r, action, sid, now=1000, next_ms=0, tenant="", fields=()):
    """schedule.lua."""
    return script(r, "schedule")(
        keys=[f"{PREFIX}:schedule:{sid}", f"{PREFIX}:schedules", f"{PREFIX}:schedules:due"],
        args=[action, sid, now, next_ms, tenant, *fields],
    )


def tick(r, sid, due, next_ms, job_id, now):
    """tick.lua, as a worker calls it with the due score it read."""
    return script(r, "tick")(
        keys=[f"{PREFIX}:schedule:{sid}", f"{PREFIX}:schedules:due", JOB_PREFIX + job_id, QUEUE,
              f"{PREFIX}:index:all"],
        args=[sid, due, next_ms, job_id, now, EVENTS_CHANNEL, "PUBLISH", PREFIX],
    )


def test_schedules_pages_by_cursor_even_when_its_schedule_is_gone(r):
    def page(cursor="", limit=2, tenant=""):
        out = script(r, "schedules")(keys=[f"{PREFIX}:schedules"],
                                     args=[PREFIX, "", limit, tenant, cursor])
        return out[0], [dict(zip(h[::2], h[1::2]))["id"] for h in out[1:]]

    # Five made in one ms: the zset orders them by their ids' bytes
    # (upper case before lower case, whatever the locale).
    ids = ["B", "a", "b", "Z", "c"]
    for sid in ids:
        schedule(r, "add", sid, now=1000, next_ms=5000, fields=["every_ms", "1000"])
        r.hset(f"{PREFIX}:schedule:{sid}", mapping={"id": sid, "tenant": "t" if sid != "b" else "u"})
    order = r.zrange(f"{PREFIX}:schedules", 0, -1)
    assert order == ["B", "Z", "a", "b", "c"]
    cursor, got = page()
    assert (cursor, got) == ("1000:Z", ["B", "Z"])
    # Z is deleted: the next page starts after where it stood.
    schedule(r, "delete", "Z")
    assert page(cursor) == ("1000:b", ["a", "b"])
    assert page("1000:b") == ("", ["c"])
    # Filtered by tenant, a page may be short and still have a cursor.
    assert page("1000:B", tenant="u") == ("1000:b", ["b"])
    assert page("1000:Y") == ("1000:b", ["a", "b"])  # never there: after its place too
    assert page("", limit=4) == ("", ["B", "a", "b", "c"])


def test_a_tick_is_fenced_on_the_due_score_it_read(r):
    """Two replicas that read the same due score: the first makes the job
    and moves the schedule on, the second does nothing. The job waits by
    fair share as a submitted one does, marked with its schedule."""
    spec = json.dumps({"code": "def run(ctx):\n    return 1\n"})
    code, _ = schedule(r, "add", "s1", next_ms=2000,
                       fields=["spec", spec, "tenant", "desk", "priority", "8", "overlap", "allow"])
    assert code == 1 and r.zscore(f"{PREFIX}:schedules:due", "s1") == 2000
    assert tick(r, "s1", 2000, 3000, "j1", 2010) == [1, "j1"]
    assert tick(r, "s1", 2000, 3000, "j2", 2020) == [0, "fenced"]
    assert not r.exists(JOB_PREFIX + "j2")
    job = r.hgetall(JOB_PREFIX + "j1")
    assert job["schedule"] == "s1" and job["schedule_ms"] == "2000" and job["tenant"] == "desk"
    assert job["status"] == "queued" and job["priority"] == "8" and job["created_ms"] == "2010"
    assert r.zscore(f"{PREFIX}:fair:bk:desk", "j1") is not None and r.lrange(QUEUE, 0, -1) == ["*"]
    h = r.hgetall(f"{PREFIX}:schedule:s1")
    assert (h["fires"], h["last_job"], h["next_ms"], h["last_due_ms"]) == ("1", "j1", "3000", "2000")
    # Skip: the last job is not terminal yet; the schedule moves on.
    r.hset(f"{PREFIX}:schedule:s1", "overlap", "skip")
    assert tick(r, "s1", 3000, 4000, "j3", 3005) == [2, "j1"]
    assert not r.exists(JOB_PREFIX + "j3") and r.hget(f"{PREFIX}:schedule:s1", "skipped") == "1"
    r.hset(JOB_PREFIX + "j1", "status", "succeeded")
    assert tick(r, "s1", 4000, 5000, "j4", 4001) == [1, "j4"]
    # Paused or deleted between the read and the tick: nothing.
    code, h = schedule(r, "pause", "s1")
    assert code == 1 and r.zscore(f"{PREFIX}:schedules:due", "s1") is None
    assert tick(r, "s1", 5000, 6000, "j5", 5001) == [0, "fenced"]
    assert schedule(r, "pause", "s1")[0] == 2
    assert schedule(r, "resume", "s1", next_ms=9000, tenant="other") == [0, []]
    assert schedule(r, "resume", "s1", next_ms=9000)[0] == 1
    r.delete(f"{PREFIX}:schedule:s1")
    assert tick(r, "s1", 9000, 10000, "j6", 9001) == [0, "gone"]
    assert r.zscore(f"{PREFIX}:schedules:due", "s1") is None


def test_nothing_is_unparked_while_the_queue_is_paused(r):
    """A new tenants' configuration (and a tenant's resume) puts parked
    entries back on the queue, but not while the whole queue is paused."""
    for i in range(3):
        enqueue(r, f"p{i}", tenant="alice")
    pause = script(r, "pause")
    assert pause(keys=[QUEUE], args=[PREFIX, "*", 1, EVENTS_CHANNEL, "PUBLISH"]) == 1
    assert r.llen(QUEUE) == 0 and r.llen(f"{PREFIX}:fair:parked") == 3
    assert script(r, "tenants")(keys=[QUEUE], args=[PREFIX, "cap:alice", "2"]) == 1
    assert pause(keys=[QUEUE], args=[PREFIX, "alice", 0, EVENTS_CHANNEL, "PUBLISH"]) == 0
    assert r.llen(QUEUE) == 0 and r.llen(f"{PREFIX}:fair:parked") == 3
    assert pause(keys=[QUEUE], args=[PREFIX, "*", 0, EVENTS_CHANNEL, "PUBLISH"]) == 1
    assert r.llen(QUEUE) == 3 and r.llen(f"{PREFIX}:fair:parked") == 0


def test_tenants_are_served_by_weight_and_a_newcomer_gets_no_credit(r):
    """Stride scheduling: with weights 2 and 1, of 30 jobs taken 20 are the
    heavier tenant's; a tenant that starts submitting later is served in
    turn from then on, not first until it has caught up."""
    assert script(r, "tenants")(keys=[QUEUE], args=[PREFIX, "weight:a", "2"]) == 0
    for i in range(30):
        enqueue(r, f"a{i}", tenant="a")
        enqueue(r, f"b{i}", tenant="b")
    taken = []
    for _ in range(30):
        job_id, reply = take(r, "w1")
        assert reply[0] == "run", reply
        taken.append(job_id[0])
        assert complete(r, job_id, "w1", 1) == 1
    assert taken.count("a") == 20 and taken.count("b") == 10, taken
    # c comes now: it is served every third job (weights 2, 1, 1), not 10 in a row.
    for i in range(10):
        enqueue(r, f"c{i}", tenant="c")
    later = []
    for _ in range(12):
        job_id, _ = take(r, "w1")
        later.append(job_id[0])
        complete(r, job_id, "w1", 1)
    assert 2 <= later.count("c") <= 4, later


def test_a_capped_tenant_is_never_left_with_its_tickets_parked(r):
    """Cap 2: two jobs run and the tenant's other tickets are parked; both
    end before any parked ticket is taken again. Each end gives one back,
    so the tenant goes on to run every job (one given back for both ends
    would leave the rest parked for ever)."""
    assert script(r, "tenants")(keys=[QUEUE], args=[PREFIX, "cap:c", "2"]) == 0
    for i in range(6):
        enqueue(r, f"c{i}", tenant="c")
    first = [take(r, "w1")[0], take(r, "w2")[0]]
    # The others' tickets, taken now, are parked: c is at its cap.
    while r.llen(QUEUE):
        _, reply = take(r, "w3")
        assert reply == ["skip", "held"], reply
    assert r.llen(f"{PREFIX}:fair:parked") == 4
    assert complete(r, first[0], "w1", 1) == 1
    assert complete(r, first[1], "w2", 1) == 1
    assert r.llen(QUEUE) == 2
    done = 2
    while done < 6:
        job_id, reply = take(r, "w1")
        assert reply[0] == "run", reply
        assert complete(r, job_id, "w1", 1) == 1
        done += 1
    assert r.llen(QUEUE) == 0 and r.llen(f"{PREFIX}:fair:parked") == 0


def test_a_ticket_started_again_returns_the_same_job(r):
    """A worker whose start.lua reply was lost with the connection asks
    again with the ticket: it gets the job the first call picked, the same
    attempt, not a skip that would strand it."""
    enqueue(r, "t1", tenant="t")
    processing = f"{PREFIX}:processing:w1"
    assert r.blmove(QUEUE, processing, 1, "RIGHT", "LEFT") == "*"
    start = script(r, "start")
    args = ["*", "w1", 2000, EVENTS_CHANNEL, "PUBLISH", PREFIX]
    first = start(keys=[JOB_PREFIX + "*", processing, QUEUE], args=args)
    again = start(keys=[JOB_PREFIX + "*", processing, QUEUE], args=args)
    assert first[0] == "run" and first[5] == "t1" and first[1] == 1, first
    assert again == first, again
    assert r.lrange(processing, 0, -1) == ["t1"]
