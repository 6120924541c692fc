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


def enqueue(r, job_id, spec=None, client_id=True, publish="PUBLISH"):
    spec = spec or {"code": "def run(ctx):\n    return 1\n"}
    return script(r, "enqueue")(
        keys=[JOB_PREFIX + job_id, QUEUE, f"{PREFIX}:index:all"],
        args=[job_id, json.dumps(spec), 1000, EVENTS_CHANNEL, publish, 1 if client_id else 0],
    )


def take(r, worker, publish="PUBLISH"):
    """BLMOVE as the worker does, then start.lua."""
    processing = f"{PREFIX}:processing:{worker}"
    job_id = r.blmove(QUEUE, processing, 1, "RIGHT", "LEFT")
    assert job_id is not None
    reply = script(r, "start")(
        keys=[JOB_PREFIX + job_id, processing],
        args=[job_id, worker, 2000, EVENTS_CHANNEL, publish],
    )
    return job_id, reply


def complete(r, job_id, worker, attempt, status="succeeded", result="42", publish="PUBLISH"):
    job = JOB_PREFIX + job_id
    return script(r, "complete")(
        keys=[job, f"{PREFIX}:processing:{worker}", f"{job}:stdout", f"{job}:stderr", f"{job}:log",
              f"{PREFIX}:scheduled", f"{PREFIX}:dead", f"{PREFIX}:index:{status}",
              f"{PREFIX}:index:scheduled", f"{PREFIX}:index:dead"],
        args=[job_id, worker, attempt, 3000, EVENTS_CHANNEL, publish, 60, 120, 1, 0, status, 0,
              "result", result],
    )


def lost(r, job_id, worker, counts):
    return script(r, "lost")(
        keys=[f"{PREFIX}:processing:{worker}", QUEUE, JOB_PREFIX + job_id, f"{PREFIX}:dead",
              f"{PREFIX}:index:dead"],
        args=[job_id, worker, 2500, EVENTS_CHANNEL, "PUBLISH", 3, 120, 1 if counts else 0],
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
    assert enqueue(r, "j1", {"code": "other"}) == [0, "queued"]
    assert r.llen(QUEUE) == 1
    assert json.loads(r.hget(JOB_PREFIX + "j1", "spec"))["code"] != "other"
    assert r.zscore(f"{PREFIX}:index:all", "j1") == 1000
    # An id the API made itself (128 random bits) is not checked first.
    assert enqueue(r, "fresh", client_id=False) == [1, "queued"]
    assert r.hget(JOB_PREFIX + "fresh", "status") == "queued" and r.llen(QUEUE) == 2


def test_start_then_complete_writes_outcome(r):
    enqueue(r, "j1")
    job_id, reply = take(r, "w1")
    assert reply[0] == "run" and reply[1] == 1
    assert r.hget(JOB_PREFIX + job_id, "status") == "running"
    assert complete(r, job_id, "w1", 1) == 1
    job = r.hgetall(JOB_PREFIX + job_id)
    assert job["status"] == "succeeded" and job["result"] == "42"
    assert job["finished_ms"] == "3000"
    assert r.llen(f"{PREFIX}:processing:w1") == 0
    assert 0 < r.ttl(JOB_PREFIX + job_id) <= 60


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


def page(r, index, status, limit, cursor=("+inf", ""), own=False, count=None):
    """A listing page as the API reads it: list.lua, then page.lua."""
    key = f"{PREFIX}:index:{index}"
    found = script(r, "list")(keys=[key], args=[*cursor, count or limit + 4])
    ids = found[1::2]
    return script(r, "page")(
        keys=[key, *(JOB_PREFIX + i for i in ids)],
        args=[status, 1 if own else 0, limit, found[0], *found[1:]],
    )


def test_list_filters_the_all_index_for_statuses_without_their_own(r):
    for i in range(5):
        enqueue(r, f"j{i}")
    r.zadd(f"{PREFIX}:index:all", {f"j{i}": 1000 + i for i in range(5)})
    for i in (1, 3):
        r.hset(JOB_PREFIX + f"j{i}", "status", "succeeded")
    got = page(r, "all", "succeeded", 10)
    assert got[:2] == ["", ""]  # the end: no cursor
    assert [got[i] for i in range(2, len(got), 8)] == ["j3", "j1"]
    # A page that fills up carries the cursor of its last job.
    got = page(r, "all", "queued", 1)
    assert got[2] == "j4" and got[:2] == ["1004", "j4"]
    got = page(r, "all", "queued", 10, cursor=("1004", "j4"))
    assert [got[i] for i in range(2, len(got), 8)] == ["j2", "j0"] and got[:2] == ["", ""]
    # Reading stops at the ids it was given: a short page with a cursor.
    got = page(r, "all", "queued", 10, count=2)
    assert [got[i] for i in range(2, len(got), 8)] == ["j4"] and got[:2] == ["1003", "j3"]
    # A status index's entry whose job has left that status is dropped.
    r.zadd(f"{PREFIX}:index:failed", {"j1": 5, "j2": 6})
    r.hset(JOB_PREFIX + "j2", "status", "failed")
    got = page(r, "failed", "failed", 10, own=True)
    assert [got[i] for i in range(2, len(got), 8)] == ["j2"]
    assert r.zrange(f"{PREFIX}:index:failed", 0, -1) == ["j2"]


def test_stats_counts(r):
    for i in range(3):
        enqueue(r, f"j{i}")
    take(r, "w1")
    r.zadd(f"{PREFIX}:workers", {"w1": 1, "w2": 1})
    r.zadd(f"{PREFIX}:dead", {"d": 1})
    # The API reads the workers first, then names their processing lists.
    workers = r.zrange(f"{PREFIX}:workers", 0, -1)
    counts = script(r, "stats")(
        keys=[QUEUE, f"{PREFIX}:workers", f"{PREFIX}:scheduled", f"{PREFIX}:dead",
              *(f"{PREFIX}:processing:{w}" for w in workers)],
        args=[],
    )
    assert counts == [2, 1, 0, 1, 2]


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
