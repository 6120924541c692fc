"""The Python client library (clients/python/stratq_client) against the real
stack: submitting (source, a file, a batch), waiting, results and typed
errors, cancel, retry, logs, listing, auth and transport failures.

The client's retry policy (which requests are repeated after a 503) is
checked against a small scripted HTTP server, where requests can be counted.
"""

import http.client
import http.server
import json
import socket
import sys
import textwrap
import threading
import time

import pytest

from conftest import PREFIX, QUEUE, REPO_ROOT, free_port, wait_for

sys.path.insert(0, str(REPO_ROOT / "clients" / "python"))
import stratq_client  # noqa: E402
from stratq_client import (  # noqa: E402
    BadRequest,
    BatchError,
    Client,
    Conflict,
    ConnectionFailed,
    Forbidden,
    JobFailed,
    JobNotFinished,
    NotFound,
    StratqError,
    Unauthorized,
    Unavailable,
    WaitTimeout,
    job_spec,
)
from stratq_client.errors import error_from_response  # noqa: E402

SQUARE = "def run(ctx):\n    n = ctx.params['n']\n    return {'n': n, 'square': n * n}\n"
RETURN_7 = "def run(ctx):\n    return 7\n"
SLEEPER = (
    "import time\n\ndef run(ctx):\n    print('started', flush=True)\n"
    "    time.sleep(ctx.params.get('s', 60))\n    return 'woke'\n"
)
JOB_TIMEOUT = 60


def client_for(api_proc, **kw):
    kw.setdefault("token", "")  # not $STRATQ_API_TOKEN of the environment
    return Client(api_proc.url, **kw)


@pytest.fixture
def running(stack):
    """(client, api proc): an API and one worker."""
    api = stack.start_api()
    stack.start_worker()
    with client_for(api) as c:
        yield c, api


@pytest.fixture
def idle(stack):
    """(client, api proc): an API and no worker, so jobs stay queued."""
    api = stack.start_api()
    with client_for(api) as c:
        yield c, api


def test_the_client_is_separate_from_the_job_package():
    src = (REPO_ROOT / "clients" / "python" / "stratq_client")
    for path in src.glob("*.py"):
        text = path.read_text()
        assert "import stratq\n" not in text and "from stratq " not in text and "from stratq." not in text, path
    harness = REPO_ROOT / "python" / "stratq"
    for path in harness.glob("*.py"):
        assert "stratq_client" not in path.read_text(), path


def test_submit_and_result(running):
    c, _ = running
    job_id = c.submit(SQUARE, params={"n": 12}, timeout_s=30, memory_mb=512)
    assert isinstance(job_id, str) and job_id
    assert c.result(job_id, timeout=JOB_TIMEOUT) == {"n": 12, "square": 144}

    job = c.status(job_id)
    assert job["id"] == job_id and job["status"] == "succeeded", job
    assert job["result"] == {"n": 12, "square": 144}
    assert job["spec"]["params"] == {"n": 12}
    assert job["spec"]["timeout_s"] == 30 and job["spec"]["memory_mb"] == 512, job["spec"]
    # wait() returns the terminal record; a second result() needs no wait.
    assert c.wait(job_id, timeout=5)["status"] == "succeeded"
    assert c.result(job_id, wait=False) == {"n": 12, "square": 144}

    # entrypoint and data; run() is submit + result.
    code = "def run(ctx):\n    raise AssertionError('not me')\n\ndef main(ctx):\n    return sum(ctx.data)\n"
    assert c.run(code, data=[1, 2, 3.5], entrypoint="main", timeout=JOB_TIMEOUT) == 6.5


def test_submit_a_file_path(running, tmp_path):
    c, _ = running
    path = tmp_path / "strategy.py"
    path.write_text("def run(ctx):\n    return {'from': 'file', 'x': ctx.params['x']}\n")
    job_id = c.submit(path, {"x": 3})
    assert c.result(job_id, timeout=JOB_TIMEOUT) == {"from": "file", "x": 3}
    assert c.status(job_id)["spec"]["code"] == path.read_text()
    with pytest.raises(FileNotFoundError):
        c.submit(tmp_path / "missing.py")
    with pytest.raises(TypeError):
        c.submit(42)


def test_idempotent_submit_with_a_job_id(idle, r):
    c, _ = idle
    assert c.submit(RETURN_7, job_id="order-42") == "order-42"
    # The same id again creates nothing, whatever the spec.
    assert c.submit("def run(ctx):\n    return 8\n", job_id="order-42") == "order-42"
    assert r.llen(QUEUE) == 1
    assert "return 7" in c.status("order-42")["spec"]["code"]


def test_submit_batch(running, tmp_path):
    c, _ = running
    path = tmp_path / "double.py"
    path.write_text("def run(ctx):\n    return ctx.params['n'] * 2\n")
    specs = [
        job_spec(SQUARE, {"n": 4}),
        job_spec(path, {"n": 21}),
        {"code": RETURN_7, "id": "batch-seven"},
    ]
    ids = c.submit_batch(specs)
    assert len(ids) == 3 and ids[2] == "batch-seven" and len(set(ids)) == 3, ids
    results = [c.result(i, timeout=JOB_TIMEOUT) for i in ids]
    assert results == [{"n": 4, "square": 16}, 42, 7]

    # One bad spec: the others are still enqueued and run; the error names
    # the field.
    with pytest.raises(BatchError) as ei:
        c.submit_batch([{"code": RETURN_7}, {"code": RETURN_7, "timeout_s": -1}, {"params": {}}])
    e = ei.value
    assert e.ids[0] is not None and e.ids[1] is None and e.ids[2] is None, e.ids
    assert set(e.errors) == {1, 2}
    assert isinstance(e.errors[1], BadRequest) and e.errors[1].field == "timeout_s", e.errors[1]
    assert isinstance(e.errors[2], BadRequest) and e.errors[2].field == "code", e.errors[2]
    assert c.result(e.ids[0], timeout=JOB_TIMEOUT) == 7

    # The batch limits are the API's: 1 to 1000 specs.
    for bad in ([], [{"code": RETURN_7}] * (stratq_client.MAX_BATCH + 1)):
        with pytest.raises(BadRequest) as ei:
            c.submit_batch(bad)
        assert ei.value.status == 400 and ei.value.field == "jobs", ei.value


def test_wait_timeout_raises(idle):
    c, _ = idle  # no worker: the job stays queued
    job_id = c.submit(RETURN_7)
    t0 = time.monotonic()
    with pytest.raises(WaitTimeout) as ei:
        c.wait(job_id, timeout=1.5, poll=1)
    waited = time.monotonic() - t0
    assert isinstance(ei.value, TimeoutError) and isinstance(ei.value, StratqError)
    assert ei.value.job_id == job_id and ei.value.status == "queued", ei.value
    assert 1.4 <= waited < 5, waited

    t0 = time.monotonic()
    with pytest.raises(WaitTimeout):
        c.result(job_id, timeout=1)
    assert 0.9 <= time.monotonic() - t0 < 5
    with pytest.raises(JobNotFinished) as ei:
        c.result(job_id, wait=False)
    assert ei.value.status == "queued"
    with pytest.raises(WaitTimeout):
        c.wait(job_id, timeout=0)
    with pytest.raises(ValueError):
        c.wait(job_id, poll=61)


def test_wait_returns_as_soon_as_the_job_finishes(stack):
    api = stack.start_api()
    c = client_for(api)
    job_id = c.submit(RETURN_7)
    stack.start_worker()
    t0 = time.monotonic()
    job = c.wait(job_id, timeout=JOB_TIMEOUT, poll=60)
    assert job["status"] == "succeeded" and job["result"] == 7, job
    # Woken by the completion through the long-poll, not by its end.
    assert time.monotonic() - t0 < 30


def test_job_failed_carries_the_error(running):
    c, _ = running
    code = textwrap.dedent(
        """
        def run(ctx):
            print("about to fail")
            raise ValueError("no edge today: " + str(ctx.params["day"]))
        """
    )
    job_id = c.submit(code, {"day": 3})
    with pytest.raises(JobFailed) as ei:
        c.result(job_id, timeout=JOB_TIMEOUT)
    e = ei.value
    assert e.job_id == job_id and e.status == "failed", e
    assert e.error_type == "ValueError", e.error
    assert e.error_message == "no edge today: 3", e.error
    assert "raise ValueError" in e.traceback, e.traceback
    assert e.job["id"] == job_id and e.job["status"] == "failed" and "about to fail" in e.job["stdout"]
    assert "ValueError" in str(e) and "no edge today" in str(e)
    # wait() returns the failed record rather than raising.
    assert c.wait(job_id, timeout=5)["error"]["type"] == "ValueError"


def test_cancel_a_running_job(running):
    c, _ = running
    job_id = c.submit(SLEEPER, {"s": 60})
    wait_for(lambda: "started" in c.logs(job_id)["stdout"], 30, f"job {job_id} to print 'started'")
    answer = c.cancel(job_id)
    assert answer == {"id": job_id, "status": "cancelling"}, answer
    job = c.wait(job_id, timeout=15)
    assert job["status"] == "cancelled", job
    with pytest.raises(JobFailed) as ei:
        c.result(job_id, timeout=5)
    assert ei.value.status == "cancelled" and ei.value.error_type == "Cancelled", ei.value.error
    with pytest.raises(Conflict) as ei:
        c.cancel(job_id)
    assert ei.value.status == 409 and "already finished" in ei.value.message


def test_cancel_a_queued_job_and_wait(idle):
    c, _ = idle
    job_id = c.submit(RETURN_7)
    job = c.cancel(job_id, wait=True, timeout=10)
    assert job["status"] == "cancelled", job


def test_retry_of_a_failed_job(running):
    c, _ = running
    code = (
        "def run(ctx):\n    if ctx.attempt == 1:\n        raise RuntimeError('first run fails')\n"
        "    return {'attempt': ctx.attempt}\n"
    )
    job_id = c.submit(code)
    with pytest.raises(JobFailed) as ei:
        c.result(job_id, timeout=JOB_TIMEOUT)
    assert ei.value.error_type == "RuntimeError"
    answer = c.retry(job_id)
    assert answer == {"id": job_id, "status": "queued", "attempts": 1}, answer
    assert c.result(job_id, timeout=JOB_TIMEOUT) == {"attempt": 2}
    assert c.status(job_id)["attempts"] == 2
    # A succeeded job cannot be retried.
    with pytest.raises(Conflict) as ei:
        c.retry(job_id)
    assert "succeeded" in ei.value.message


def test_logs(running):
    c, _ = running
    code = (
        "import sys\n\ndef run(ctx):\n    print('line one')\n    print('line two')\n"
        "    print('to stderr', file=sys.stderr)\n    return 1\n"
    )
    job_id = c.submit(code)
    assert c.result(job_id, timeout=JOB_TIMEOUT) == 1
    logs = c.logs(job_id)
    assert logs["stdout"] == "line one\nline two\n" and logs["stderr"] == "to stderr\n", logs
    assert logs["done"] is True and logs["status"] == "succeeded"
    assert logs["stdout_offset"] == len("line one\nline two\n")
    # From an offset: only what comes after it.
    tail = c.logs(job_id, stdout_offset=len("line one\n"), stderr_offset=logs["stderr_offset"])
    assert tail["stdout"] == "line two\n" and tail["stderr"] == "", tail


def test_follow_logs_of_a_running_job(running):
    c, _ = running
    code = (
        "import time\n\ndef run(ctx):\n    for i in range(3):\n"
        "        print('tick', i, flush=True)\n        time.sleep(0.3)\n    return 'done'\n"
    )
    job_id = c.submit(code)
    pages = list(c.follow_logs(job_id, interval=0.1, timeout=JOB_TIMEOUT))
    assert pages[-1]["done"] is True and all(not p["done"] for p in pages[:-1]), pages
    assert "".join(p["stdout"] for p in pages) == "tick 0\ntick 1\ntick 2\n", pages


def test_jobs_listing_pages(idle):
    c, _ = idle
    ids = c.submit_batch([{"code": RETURN_7, "id": f"list-{i}"} for i in range(7)])
    listed = list(c.jobs(page_size=3))
    assert len(listed) == 7 and {j["id"] for j in listed} == set(ids), listed
    created = [j["created_ms"] for j in listed]
    assert created == sorted(created, reverse=True), "not newest first"
    assert all(j["status"] == "queued" for j in listed)

    first = c.jobs_page(limit=3)
    assert len(first["jobs"]) == 3 and first["next_cursor"], first
    second = c.jobs_page(limit=3, cursor=first["next_cursor"])
    assert [j["id"] for j in first["jobs"] + second["jobs"]] == [j["id"] for j in listed[:6]]

    assert [j["id"] for j in c.jobs(limit=5, page_size=2)] == [j["id"] for j in listed[:5]]
    assert [j["id"] for j in c.jobs(status="queued", page_size=500)] == [j["id"] for j in listed]
    assert list(c.jobs(status="succeeded")) == []
    # By tenant: the API's default tenant holds them all; another none.
    assert [j["id"] for j in c.jobs(tenant="default", page_size=2)] == [j["id"] for j in listed]
    assert all(j["tenant"] == "default" for j in listed), listed
    c.submit(RETURN_7, job_id="list-alice", tenant="alice")
    assert [j["id"] for j in c.jobs(tenant="alice")] == ["list-alice"]
    assert [j["id"] for j in c.jobs_page(tenant="alice", status="queued")["jobs"]] == ["list-alice"]
    with pytest.raises(BadRequest) as ei:
        list(c.jobs(tenant="a b"))
    assert ei.value.field == "tenant", ei.value
    with pytest.raises(BadRequest) as ei:
        list(c.jobs(status="bogus"))
    assert ei.value.field == "status", ei.value
    with pytest.raises(BadRequest) as ei:
        c.jobs_page(limit=0)
    assert ei.value.field == "limit", ei.value


def test_jobs_listing_pages_through_jobs_created_in_the_same_millisecond(idle, r):
    c, _ = idle
    ids = c.submit_batch([{"code": RETURN_7, "id": f"same-ms-{i}"} for i in range(7)])
    # Make them all created in the same millisecond, as a batch often is.
    score = r.zscore(f"{PREFIX}:index:all", ids[0])
    r.zadd(f"{PREFIX}:index:all", {i: score for i in ids})
    assert sorted(j["id"] for j in c.jobs(page_size=1)) == sorted(ids)


def test_unknown_job_is_not_found(idle):
    c, _ = idle
    for call in (c.status, c.result, c.cancel, c.retry, c.logs, c.wait):
        with pytest.raises(NotFound) as ei:
            call("no-such-job")
        assert ei.value.status == 404 and "no-such-job" in ei.value.message, (call, ei.value)
    with pytest.raises(ValueError):
        c.status("not/an id")


def test_bad_specs_are_bad_requests_naming_the_field(idle, r):
    c, _ = idle
    cases = [
        ({"timeout_s": -1}, "timeout_s"),
        ({"memory_mb": 0}, "memory_mb"),
        ({"memory_mb": 1.5}, "memory_mb"),
        ({"entrypoint": "not an identifier"}, "entrypoint"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"no_such_field": 1}, "no_such_field"),
        ({"job_id": "has space"}, "id"),
    ]
    for kwargs, field in cases:
        with pytest.raises(BadRequest) as ei:
            c.submit(RETURN_7, **kwargs)
        e = ei.value
        assert e.status == 400 and e.field == field, (kwargs, e.field, e)
        assert field in e.message and e.body == {"error": e.message}, e
    with pytest.raises(BadRequest) as ei:
        c.submit("")
    assert ei.value.field == "code"
    with pytest.raises(ValueError):  # NaN is not JSON: refused before sending
        c.submit(RETURN_7, params={"x": float("nan")})
    assert r.llen(QUEUE) == 0


def test_malformed_json_maps_to_bad_request_with_its_position(idle):
    # The client always sends valid JSON; this checks that its error mapping
    # reads the API's real answer to a malformed body.
    _, api = idle
    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=10)
    try:
        conn.request("POST", "/v1/jobs", body=b'{"code": "x",\n  oops}',
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        text = resp.read().decode()
    finally:
        conn.close()
    e = error_from_response(resp.status, json.loads(text), text, dict(resp.getheaders()))
    assert isinstance(e, BadRequest) and e.status == 400, e
    assert e.line == 2 and e.column is not None and e.field is None, (e.line, e.column, e)


def test_unauthorized_and_the_right_token(stack, tmp_path, monkeypatch):
    tokens = tmp_path / "tokens"
    tokens.write_text("# client tests\nsecret-one\n")
    api = stack.start_api(env={"STRATQ_API_TOKENS_FILE": str(tokens)})
    stack.start_worker()

    monkeypatch.delenv("STRATQ_API_TOKEN", raising=False)
    anonymous = Client(api.url)
    with pytest.raises(Unauthorized) as ei:
        anonymous.queue()
    assert ei.value.status == 401 and not isinstance(ei.value, Forbidden), ei.value
    assert ei.value.headers.get("www-authenticate", "").startswith("Bearer")
    with pytest.raises(Unauthorized):
        anonymous.submit(RETURN_7)
    assert anonymous.health()["status"] == "ok"  # no token needed

    with pytest.raises(Forbidden) as ei:  # also an Unauthorized
        client_for(api, token="wrong").queue()
    assert ei.value.status == 403

    good = client_for(api, token="secret-one")
    assert good.queue()["workers"] == 1
    assert good.run(RETURN_7, timeout=JOB_TIMEOUT) == 7
    # The token from the environment.
    monkeypatch.setenv("STRATQ_API_TOKEN", "secret-one")
    monkeypatch.setenv("STRATQ_API_URL", api.url)
    from_env = Client()
    assert from_env.base_url == api.url and len(from_env.workers()) == 1
    assert "secret-one" not in repr(from_env)


def test_connection_failed_to_a_closed_port():
    port = free_port()  # bound and closed again: nothing listens
    c = Client(f"http://127.0.0.1:{port}", token="", timeout=5)
    t0 = time.monotonic()
    with pytest.raises(ConnectionFailed) as ei:
        c.queue()
    assert isinstance(ei.value, ConnectionError) and isinstance(ei.value, StratqError)
    assert str(port) in str(ei.value) and ei.value.url.endswith("/v1/queue")
    with pytest.raises(ConnectionFailed):
        c.submit(RETURN_7)
    assert time.monotonic() - t0 < 5


def test_unavailable_when_redis_is_gone(private_redis, stack):
    api = stack.start_api(args=["--redis-url", private_redis.url])
    c = client_for(api, max_retries=0)
    assert c.queue()["pending"] == 0
    private_redis.stop()

    def unavailable():
        try:
            c.queue()
        except Unavailable as e:
            return e
        return None

    e = wait_for(unavailable, 10, "503 once Redis is gone")
    assert e.status == 503 and e.retry_after is not None and "Redis" in e.message, e
    # GETs are retried: twice here, after the API's Retry-After (1 s) each.
    retrying = client_for(api, max_retries=2)
    t0 = time.monotonic()
    with pytest.raises(Unavailable):
        retrying.queue()
    assert time.monotonic() - t0 >= 1.9
    # A submission without a job id is never sent twice.
    t0 = time.monotonic()
    with pytest.raises(Unavailable):
        retrying.submit(RETURN_7)
    assert time.monotonic() - t0 < 1.5


# --------------------------------------------------------------------------
# The retry policy and keep-alive, against a scripted server
# --------------------------------------------------------------------------


class ScriptedApi:
    """A local HTTP server that answers 503 (Retry-After: 0) to the first
    ``failures`` requests of each (method, path) and 200/201 after, counting
    requests. With ``close_after_reply`` it closes each connection after its
    answer without saying so (an idle keep-alive connection dropped by the
    server)."""

    def __init__(self, failures=2, close_after_reply=False):
        self.counts = {}
        self.closed = 0  # connections closed after their answer
        self.lock = threading.Lock()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                key = (self.command, self.path.split("?")[0])
                with owner.lock:
                    n = owner.counts[key] = owner.counts.get(key, 0) + 1
                if n <= failures:
                    status, out = 503, {"error": "Redis is unavailable; retry shortly"}
                elif self.command == "POST":
                    status, out = 201, {"id": (body or {}).get("id", "new-id"), "status": "queued"}
                else:
                    status, out = 200, {"queue": "q", "pending": 0, "processing": 0,
                                        "scheduled": 0, "dead": 0, "workers": 0}
                data = json.dumps(out).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if status == 503:
                    self.send_header("Retry-After", "0")
                self.end_headers()
                self.wfile.write(data)
                self.wfile.flush()
                if close_after_reply:
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    with owner.lock:
                        owner.closed += 1

            do_GET = do_POST = do_DELETE = _answer

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def test_only_safe_requests_are_retried_after_503():
    with ScriptedApi(failures=2) as fake:
        c = Client(fake.url, token="", max_retries=3)
        assert c.queue()["pending"] == 0
        assert fake.counts[("GET", "/v1/queue")] == 3  # two 503s, then 200

        with pytest.raises(Unavailable) as ei:
            c.submit(RETURN_7)
        assert ei.value.retry_after == 0
        assert fake.counts[("POST", "/v1/jobs")] == 1  # never repeated

        # With a job id the API deduplicates, so the submission is retried.
        assert c.submit(RETURN_7, job_id="order-9") == "order-9"
        assert fake.counts[("POST", "/v1/jobs")] == 2 + 1

        with pytest.raises(Unavailable):
            Client(fake.url, token="", max_retries=1).workers()
        assert fake.counts[("GET", "/v1/workers")] == 2  # bounded


def test_a_dropped_keep_alive_connection_is_replaced():
    with ScriptedApi(failures=0, close_after_reply=True) as fake:
        c = Client(fake.url, token="")
        n = 0
        for i in range(5):
            for call, want in ((c.queue, {"pending": 0}), (lambda: {"id": c.submit(RETURN_7)}, {"id": "new-id"})):
                # The server has closed the connection the client keeps
                # (without "Connection: close"): the client must notice
                # and not send a POST into it.
                wait_for(lambda: fake.closed >= n, 5, f"the server to close connection {n}")
                got = call()
                assert all(got[k] == v for k, v in want.items()), (i, got)
                n += 1
        assert fake.counts[("GET", "/v1/queue")] == 5
        assert fake.counts[("POST", "/v1/jobs")] == 5


def test_the_clients_status_sets_are_the_servers(stack):
    """The client ships its status sets (a client works offline); they are
    the server's one list (GET /v1/statuses, src/queue/status.h)."""
    api = stack.start_api()
    status, body = api.client.get("/v1/statuses")
    assert status == 200, body
    served = body["statuses"]
    assert stratq_client.STATUSES == {s["name"] for s in served}
    assert stratq_client.TERMINAL_STATUSES == {s["name"] for s in served if s["terminal"]}


def test_jobs_follows_a_cursor_past_an_empty_page(stack, r):
    """A status listed by filtering the index of all jobs (queued) reads a
    bounded number of ids per page: with 1,100 newer jobs of another status
    first, page one is empty but has a cursor, and the iteration goes on to
    the queued job."""
    api = stack.start_api()
    c = client_for(api)
    old = c.submit("def run(ctx):\n    return 1\n")  # no worker: it stays queued
    score = r.zscore(f"{PREFIX}:index:all", old)
    pipe = r.pipeline(transaction=False)
    for i in range(1100):
        pipe.hset(f"{PREFIX}:job:done{i}", mapping={"status": "succeeded", "attempts": 1})
        pipe.zadd(f"{PREFIX}:index:all", {f"done{i}": score + 1 + i})
    pipe.execute()
    first = c.jobs_page(status="queued", limit=1)
    assert first["jobs"] == [] and first["next_cursor"], first
    assert [j["id"] for j in c.jobs(status="queued", page_size=1)] == [old]
