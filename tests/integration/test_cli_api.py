"""The CLI commands of the full API: cancel, retry, logs [-f], workers, jobs,
result --wait and submit --wait as long-polls, the live status line, and the
bearer token.

Most tests run against the real stack. A few run the CLI against a small
fake API in this process instead, to see exactly which requests it sends
(the query of a long-poll, the Authorization header, the offsets of logs)
without depending on the server's behaviour.
"""

import json
import os
import pty
import select
import subprocess
import textwrap
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import (
    EXAMPLES,
    STRATQ_BIN,
    describe_run,
    parse_json,
    require_binary,
    run_cli,
    sanitizer_findings,
    wait_for,
)

SLEEPY = "import time\ndef run(ctx):\n    time.sleep(ctx.params.get('s', 30))\n    return 'woke'\n"
FAILING = "def run(ctx):\n    raise ValueError('no edge today')\n"
TICKER = textwrap.dedent(
    """
    import sys, time
    def run(ctx):
        for i in range(ctx.params.get('n', 8)):
            print(f"tick {i}", flush=True)
            print(f"warn {i}", file=sys.stderr, flush=True)
            time.sleep(ctx.params.get('pause', 0.3))
        return 'done'
    """
)

# Exit codes (src/cli/cli.h).
OK, JOB_FAILED, USAGE, API_ERROR, NOT_FINISHED = 0, 1, 2, 3, 4


@pytest.fixture
def running(stack):
    """An API and one worker; returns the API process."""
    api_proc = stack.start_api()
    stack.start_worker()
    return api_proc


# --------------------------------------------------------------------------
# cancel
# --------------------------------------------------------------------------


def test_cancel_queued_job(stack):
    api = stack.start_api()
    job_id = api.client.submit({"code": SLEEPY})

    res = run_cli(["cancel", job_id], api.url)
    assert res.returncode == OK, describe_run(res)
    assert job_id in res.stdout and "cancelled" in res.stdout, describe_run(res)
    assert api.client.job(job_id)["status"] == "cancelled"
    assert api.client.queue()["pending"] == 0

    # A terminal job cannot be cancelled: the API's 409 and its message.
    res = run_cli(["cancel", job_id], api.url)
    assert res.returncode == API_ERROR, describe_run(res)
    assert "409" in res.stderr, describe_run(res)


def test_cancel_json(stack):
    api = stack.start_api()
    job_id = api.client.submit({"code": SLEEPY})
    res = run_cli(["cancel", job_id, "--json"], api.url)
    assert res.returncode == OK, describe_run(res)
    assert parse_json(res) == {"id": job_id, "status": "cancelled"}


def test_cancel_running_job(running):
    job_id = running.client.submit({"code": SLEEPY, "params": {"s": 60}})
    running.client.wait_status(job_id, "running")

    started = time.monotonic()
    res = run_cli(["cancel", job_id], running.url)
    assert res.returncode == OK, describe_run(res)
    assert "cancelling" in res.stdout, describe_run(res)
    job = running.client.wait_job(job_id, timeout=15)
    assert job["status"] == "cancelled", job
    # The contract is "within 1 s"; the bound here allows for ASan and CI.
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("cmd", ["cancel", "retry", "logs"])
def test_unknown_and_invalid_ids(stack, cmd):
    api = stack.start_api()
    res = run_cli([cmd, "no-such-job"], api.url)
    assert res.returncode == API_ERROR, describe_run(res)
    assert "404" in res.stderr, describe_run(res)

    res = run_cli([cmd, "not/an id"], api.url)
    assert res.returncode == USAGE, describe_run(res)

    res = run_cli([cmd], api.url)
    assert res.returncode == USAGE, describe_run(res)


# --------------------------------------------------------------------------
# retry
# --------------------------------------------------------------------------


def test_retry_failed_job(running):
    job_id = running.client.submit({"code": FAILING})
    assert running.client.wait_job(job_id)["status"] == "failed"

    res = run_cli(["retry", job_id], running.url)
    assert res.returncode == OK, describe_run(res)
    assert "attempt 2" in res.stdout, describe_run(res)

    job = wait_for(
        lambda: (lambda j: j if j["attempts"] == 2 and j["status"] == "failed" else None)(
            running.client.job(job_id)
        ),
        60,
        lambda: f"job {job_id} to fail again as attempt 2: {running.client.job(job_id)}",
    )
    assert job["error"]["type"] == "ValueError", job

    res = run_cli(["retry", job_id, "--json"], running.url)
    assert res.returncode == OK, describe_run(res)
    out = parse_json(res)
    assert out["id"] == job_id and out["status"] == "queued" and out["attempts"] == 2, out


def test_retry_of_succeeded_job_is_refused(running):
    job_id = running.client.submit({"code": "def run(ctx):\n    return 1\n"})
    assert running.client.wait_job(job_id)["status"] == "succeeded"
    res = run_cli(["retry", job_id], running.url)
    assert res.returncode == API_ERROR, describe_run(res)
    assert "409" in res.stderr, describe_run(res)


def test_retry_cancelled_job(stack):
    api = stack.start_api()
    job_id = api.client.submit({"code": SLEEPY})
    assert run_cli(["cancel", job_id], api.url).returncode == OK
    res = run_cli(["retry", job_id], api.url)
    assert res.returncode == OK, describe_run(res)
    assert api.client.job(job_id)["status"] == "queued"
    assert api.client.queue()["pending"] == 1


# --------------------------------------------------------------------------
# logs
# --------------------------------------------------------------------------


def test_logs_of_finished_job(running):
    job_id = running.client.submit({"code": TICKER, "params": {"n": 3, "pause": 0}})
    assert running.client.wait_job(job_id)["status"] == "succeeded"

    res = run_cli(["logs", job_id], running.url)
    assert res.returncode == OK, describe_run(res)
    assert res.stdout == "tick 0\ntick 1\ntick 2\n", describe_run(res)
    assert res.stderr == "warn 0\nwarn 1\nwarn 2\n", describe_run(res)

    res = run_cli(["logs", job_id, "--json"], running.url)
    assert res.returncode == OK, describe_run(res)
    out = parse_json(res)
    assert out["done"] is True and out["stdout"] == "tick 0\ntick 1\ntick 2\n", out
    assert out["stdout_offset"] == len(b"tick 0\ntick 1\ntick 2\n"), out


def popen_cli(args, api_url, env=None):
    require_binary()
    full_env = dict(os.environ)
    full_env["STRATQ_API_URL"] = api_url
    full_env.update(env or {})
    return subprocess.Popen(
        [str(STRATQ_BIN), *map(str, args)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full_env,
    )


@pytest.mark.parametrize("flag", ["-f", "--follow"])
def test_logs_follow_streams_until_done(running, flag):
    n = 8
    job_id = running.client.submit({"code": TICKER, "params": {"n": n, "pause": 0.4}})
    proc = popen_cli(["logs", job_id, flag], running.url)
    try:
        # The first line arrives while the job is still running.
        first = proc.stdout.readline()
        assert first == "tick 0\n", first
        assert running.client.job(job_id)["status"] in ("running", "queued")
        rest, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == OK, f"exit {proc.returncode}\n{err}"
    assert not sanitizer_findings(err), err
    # Every line exactly once, in order: the offsets were followed.
    assert first + rest == "".join(f"tick {i}\n" for i in range(n)), first + rest
    assert err == "".join(f"warn {i}\n" for i in range(n)), err
    assert running.client.job(job_id)["status"] == "succeeded"


def test_logs_follow_json_prints_one_line_per_answer(running):
    job_id = running.client.submit({"code": TICKER, "params": {"n": 3, "pause": 0.3}})
    res = run_cli(["logs", job_id, "-f", "--json"], running.url, timeout=60)
    assert res.returncode == OK, describe_run(res)
    answers = [json.loads(line) for line in res.stdout.splitlines()]
    assert answers[-1]["done"] is True, answers
    assert "".join(a["stdout"] for a in answers) == "tick 0\ntick 1\ntick 2\n", answers


# --------------------------------------------------------------------------
# workers, jobs
# --------------------------------------------------------------------------


def test_workers(stack):
    api = stack.start_api()
    workers = stack.start_workers(2)

    res = run_cli(["workers", "--json"], api.url)
    assert res.returncode == OK, describe_run(res)
    listed = parse_json(res)["workers"]
    assert {w["id"] for w in listed} == {w.id for w in workers}, listed
    for w in listed:
        assert w["state"] == "idle", w
        for key in ("host", "pid", "version", "jobs_done", "jobs_failed", "started_ms", "last_heartbeat_ms"):
            assert key in w, (key, w)

    res = run_cli(["workers"], api.url)
    assert res.returncode == OK, describe_run(res)
    lines = res.stdout.splitlines()
    assert lines[0].split()[:2] == ["ID", "STATE"], describe_run(res)
    for w in workers:
        assert any(line.startswith(w.id) and " idle " in line for line in lines), describe_run(res)


def test_workers_shows_busy_worker_and_its_job(running, stack):
    job_id = running.client.submit({"code": SLEEPY, "params": {"s": 60}})
    running.client.wait_status(job_id, "running")
    # The worker's hash shows it busy from its next heartbeat, within about
    # a second of the job's start.
    res = wait_for(lambda: (lambda r: r if "busy" in r.stdout else None)(run_cli(["workers"], running.url)),
                   10, "stratq workers to show the worker busy")
    assert res.returncode == OK, describe_run(res)
    assert "busy" in res.stdout and job_id in res.stdout, describe_run(res)
    assert run_cli(["cancel", job_id], running.url).returncode == OK


def test_no_workers(stack):
    api = stack.start_api()
    res = run_cli(["workers"], api.url)
    assert res.returncode == OK, describe_run(res)
    assert "no workers" in res.stdout, describe_run(res)


def test_jobs_newest_first_and_pages(stack):
    api = stack.start_api()
    ids = []
    for _ in range(3):
        ids.append(api.client.submit({"code": SLEEPY}))
        time.sleep(0.005)  # distinct creation ms, so "newest first" is well defined

    res = run_cli(["jobs", "--json"], api.url)
    assert res.returncode == OK, describe_run(res)
    out = parse_json(res)
    assert [j["id"] for j in out["jobs"]] == ids[::-1], out
    assert out["next_cursor"] is None, out
    for j in out["jobs"]:
        assert j["status"] == "queued" and j["attempts"] == 0, j

    res = run_cli(["jobs", "--limit", "2", "--json"], api.url)
    assert res.returncode == OK, describe_run(res)
    page1 = parse_json(res)
    assert [j["id"] for j in page1["jobs"]] == ids[:0:-1], page1
    assert isinstance(page1["next_cursor"], str) and page1["next_cursor"], page1

    res = run_cli(["jobs", "--limit", "2", "--cursor", page1["next_cursor"], "--json"], api.url)
    assert res.returncode == OK, describe_run(res)
    page2 = parse_json(res)
    assert [j["id"] for j in page2["jobs"]] == ids[:1], page2
    assert page2["next_cursor"] is None, page2

    # The table: a header, then one line per job, newest first; a hint for
    # the next page on stderr.
    res = run_cli(["jobs", "--limit", "2"], api.url)
    assert res.returncode == OK, describe_run(res)
    lines = res.stdout.splitlines()
    assert lines[0].split()[:2] == ["ID", "STATUS"], describe_run(res)
    assert [line.split()[0] for line in lines[1:]] == ids[:0:-1], describe_run(res)
    assert "--cursor" in res.stderr, describe_run(res)


def test_jobs_status_filter(running):
    ok_id = running.client.submit({"code": "def run(ctx):\n    return 1\n"})
    bad_id = running.client.submit({"code": FAILING})
    running.client.wait_job(ok_id)
    running.client.wait_job(bad_id)

    res = run_cli(["jobs", "--status", "failed", "--json"], running.url)
    assert res.returncode == OK, describe_run(res)
    assert [j["id"] for j in parse_json(res)["jobs"]] == [bad_id], res.stdout

    res = run_cli(["jobs", "--status", "succeeded"], running.url)
    assert res.returncode == OK, describe_run(res)
    assert ok_id in res.stdout and bad_id not in res.stdout, describe_run(res)

    res = run_cli(["jobs", "--status", "cancelled"], running.url)
    assert res.returncode == OK, describe_run(res)
    assert "no jobs" in res.stdout, describe_run(res)


def test_jobs_limit_is_bounded(stack):
    api = stack.start_api()
    for bad in ("0", "501", "x"):
        res = run_cli(["jobs", "--limit", bad], api.url)
        assert res.returncode == USAGE, describe_run(res)


# --------------------------------------------------------------------------
# result --wait, submit --wait
# --------------------------------------------------------------------------


def test_result_wait_returns_when_job_finishes(running):
    job_id = running.client.submit({"code": SLEEPY, "params": {"s": 1.5}})
    res = run_cli(["result", job_id, "--wait", "--json"], running.url, timeout=90)
    assert res.returncode == OK, describe_run(res)
    job = parse_json(res)
    assert job["status"] == "succeeded" and job["result"] == "woke", job


def test_result_wait_of_failed_job_exits_1(running):
    job_id = running.client.submit({"code": FAILING})
    res = run_cli(["result", job_id, "--wait"], running.url)
    assert res.returncode == JOB_FAILED, describe_run(res)
    assert "ValueError" in res.stdout, describe_run(res)


def test_submit_wait_of_cancelled_job_ends(running, tmp_path):
    """A job cancelled while submit --wait waits on it ends the wait."""
    script = tmp_path / "sleepy.py"
    script.write_text(SLEEPY)
    proc = popen_cli(["submit", script, "--params", '{"s": 60}', "--wait", "--json"], running.url)
    try:
        job_id = wait_for(
            lambda: next(
                (j["id"] for j in running.client.get("/v1/jobs?status=running")[1].get("jobs", [])), None
            ),
            30,
            "the submitted job to run",
        )
        assert run_cli(["cancel", job_id], running.url).returncode == OK
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == JOB_FAILED, f"exit {proc.returncode}\n{out}\n{err}"
    assert json.loads(out)["status"] == "cancelled", out


def run_on_pty(args, api_url, timeout=60):
    """Run the CLI with stdout and stderr on a pseudo-terminal; return
    (exit code, everything it wrote)."""
    require_binary()
    master, slave = pty.openpty()
    env = dict(os.environ, STRATQ_API_URL=api_url)
    proc = subprocess.Popen(
        [str(STRATQ_BIN), *map(str, args)], stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=env
    )
    os.close(slave)
    chunks, deadline = [], time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        proc.wait(timeout=max(1, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return proc.returncode, b"".join(chunks).decode(errors="replace")


def test_submit_wait_shows_live_status_on_a_terminal(running, tmp_path):
    script = tmp_path / "sleepy.py"
    script.write_text(SLEEPY)
    rc, out = run_on_pty(["submit", script, "--params", '{"s": 2.5}', "--wait"], running.url)
    assert rc == OK, out
    # "\r" updates naming the status and the elapsed seconds, then the result.
    updates = [u for u in out.split("\r") if u.startswith("\x1b[Kjob ")]
    assert any(": running, " in u and u.rstrip().endswith(" s") for u in updates), repr(out)
    assert "woke" in out, repr(out)


def test_no_status_line_when_not_a_terminal(running):
    res = run_cli(["submit", EXAMPLES / "hello.py", "--wait"], running.url)
    assert res.returncode == OK, describe_run(res)
    assert "\r" not in res.stderr and "\r" not in res.stdout, describe_run(res)


# --------------------------------------------------------------------------
# Auth
# --------------------------------------------------------------------------


def test_token_from_environment(stack, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text("# the CI's token\n\nsecret-token-1\nsecret-token-2\n")
    api = stack.start_api(env={"STRATQ_API_TOKENS_FILE": str(tokens)})

    res = run_cli(["queue"], api.url, env={"STRATQ_API_TOKEN": ""})
    assert res.returncode == API_ERROR, describe_run(res)
    assert "401" in res.stderr and "STRATQ_API_TOKEN" in res.stderr, describe_run(res)

    res = run_cli(["jobs"], api.url, env={"STRATQ_API_TOKEN": "wrong"})
    assert res.returncode == API_ERROR, describe_run(res)
    assert "403" in res.stderr, describe_run(res)

    env = {"STRATQ_API_TOKEN": "secret-token-2"}
    res = run_cli(["submit", EXAMPLES / "hello.py"], api.url, env=env)
    assert res.returncode == OK, describe_run(res)
    job_id = res.stdout.strip()
    for args in (["queue"], ["jobs"], ["workers"], ["status", job_id], ["logs", job_id], ["cancel", job_id]):
        res = run_cli(args, api.url, env=env)
        assert res.returncode == OK, describe_run(res)


# --------------------------------------------------------------------------
# The requests themselves, against a fake API
# --------------------------------------------------------------------------


class FakeApi:
    """An HTTP server that records each request and answers from a script:
    handler(method, path, query, headers) -> (status, body dict)."""

    def __init__(self, handler):
        self.requests = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def _serve(self):
                n = int(self.headers.get("Content-Length") or 0)
                if n:
                    self.rfile.read(n)
                url = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(url.query))
                outer.requests.append((self.command, url.path, query, dict(self.headers), time.monotonic()))
                status, body = handler(self.command, url.path, query, self.headers)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _serve

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake():
    servers = []

    def make(handler):
        servers.append(FakeApi(handler))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


RECORD = {
    "id": "j1", "status": "succeeded", "attempts": 1, "created_ms": 1, "started_ms": 2,
    "finished_ms": 3, "worker": "w", "spec": {}, "error": None, "stdout": "", "stderr": "",
    "usage": {"wall_ms": 1, "cpu_ms": 1, "max_rss_kb": 1}, "result": 7,
}


def test_result_wait_long_polls_the_result_route(fake):
    """result --wait asks /result?wait=30 again at once after each 202, with
    no sleep of its own, then reads the record once."""
    answers = iter([(202, {"id": "j1", "status": "queued"}), (202, {"id": "j1", "status": "running"})])

    def handler(method, path, query, headers):
        if path == "/v1/jobs/j1/result":
            time.sleep(0.3)  # stands for the server holding the request
            return next(answers, (200, {"id": "j1", "status": "succeeded", "result": 7, "error": None}))
        return 200, RECORD

    api = fake(handler)
    res = run_cli(["result", "j1", "--wait"], api.url)
    assert res.returncode == OK, describe_run(res)
    assert "7" in res.stdout, describe_run(res)
    polls = [r for r in api.requests if r[1] == "/v1/jobs/j1/result"]
    assert len(polls) == 3, api.requests
    assert all(r[0] == "GET" and r[2] == {"wait": "30"} for r in polls), polls
    assert [r[:3] for r in api.requests[3:]] == [("GET", "/v1/jobs/j1", {})], api.requests


def test_submit_wait_long_polls(fake, tmp_path):
    """submit --wait posts with ?wait=, then long-polls the record."""

    def handler(method, path, query, headers):
        if method == "POST":
            time.sleep(0.3)
            return 201, dict(RECORD, status="running", result=None, usage=None)
        time.sleep(0.3)
        return 200, RECORD

    api = fake(handler)
    script = tmp_path / "s.py"
    script.write_text("def run(ctx):\n    return 7\n")
    res = run_cli(["submit", script, "--wait", "--json"], api.url)
    assert res.returncode == OK, describe_run(res)
    assert parse_json(res)["result"] == 7
    assert [r[:3] for r in api.requests] == [
        ("POST", "/v1/jobs", {"wait": "30"}),
        ("GET", "/v1/jobs/j1", {"wait": "30"}),
    ], api.requests


def test_logs_follow_sends_back_the_offsets(fake):
    pages = iter(
        [
            {"stdout": "ab", "stderr": "", "stdout_offset": 2, "stderr_offset": 0, "done": False},
            {"stdout": "cd\n", "stderr": "e\n", "stdout_offset": 5, "stderr_offset": 2, "done": False},
            {"stdout": "", "stderr": "", "stdout_offset": 5, "stderr_offset": 2, "done": True},
        ]
    )

    def handler(method, path, query, headers):
        # An API without the events stream (GET /v1/events): -f reads the
        # logs on its own, every 250 ms.
        if path != "/v1/jobs/j1/logs":
            return 404, {"error": "no route"}
        return 200, dict(next(pages), id="j1", status="running")

    api = fake(handler)
    res = run_cli(["logs", "j1", "-f"], api.url)
    assert res.returncode == OK, describe_run(res)
    assert res.stdout == "abcd\n" and res.stderr == "e\n", describe_run(res)
    logs = [r for r in api.requests if r[1] == "/v1/jobs/j1/logs"]
    sent = [(r[2]["stdout_offset"], r[2]["stderr_offset"]) for r in logs]
    assert sent == [("0", "0"), ("2", "0"), ("5", "2")], api.requests
    gaps = [b[4] - a[4] for a, b in zip(logs, logs[1:])]
    assert all(g >= 0.2 for g in gaps), gaps  # polled every 250 ms, not in a spin


def test_bearer_header_only_when_token_set(fake):
    api = fake(lambda *a: (200, {"queue": "q", "pending": 0, "processing": 0, "scheduled": 0, "dead": 0, "workers": 0}))
    assert run_cli(["queue"], api.url, env={"STRATQ_API_TOKEN": "t0k"}).returncode == OK
    env = dict(os.environ)
    env.pop("STRATQ_API_TOKEN", None)
    res = subprocess.run(
        [str(STRATQ_BIN), "queue"], env=dict(env, STRATQ_API_URL=api.url), capture_output=True, text=True, timeout=60
    )
    assert res.returncode == OK, describe_run(res)
    assert api.requests[0][3].get("Authorization") == "Bearer t0k", api.requests[0][3]
    assert "Authorization" not in api.requests[1][3], api.requests[1][3]

    # A token with a line break would inject a header: refused.
    res = run_cli(["queue"], api.url, env={"STRATQ_API_TOKEN": "a\r\nX-Evil: 1"})
    assert res.returncode != OK, describe_run(res)
    assert len(api.requests) == 2


def test_jobs_query_is_escaped(fake):
    api = fake(lambda *a: (200, {"jobs": [], "next_cursor": None}))
    res = run_cli(["jobs", "--status", "failed", "--limit", "7", "--cursor", "a b&c=d"], api.url)
    assert res.returncode == OK, describe_run(res)
    assert api.requests[0][2] == {"status": "failed", "limit": "7", "cursor": "a b&c=d"}, api.requests
    assert "no jobs" in res.stdout
