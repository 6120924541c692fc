"""`stratq logs -f` and `stratq monitor` on the API's job events (GET
/v1/events, Server-Sent Events) instead of asking again and again.

They run against a small fake API in this process, which serves the event
stream, records every request, and can publish an event or drop the stream
when a test says so: what the commands ask for, and when, is the point.
(tests/integration/test_monitor.py and test_cli_api.py run them against the
real API.)
"""

import json
import os
import queue
import signal
import subprocess
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import STRATQ_BIN, require_binary, sanitizer_findings, wait_for


class EventsApi:
    """GET /v1/events as a stream the test feeds (404 without events);
    every other request is answered by handler(path, query) -> (status,
    body)."""

    def __init__(self, handler, events=True):
        self.handler = handler
        self.requests = []  # (path, query, monotonic time)
        self.streams = []
        self.lock = threading.Lock()
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(url.query))
                with outer.lock:
                    outer.requests.append((url.path, query, time.monotonic()))
                if url.path == "/v1/events" and events:
                    self._stream()
                    return
                status, body = outer.handler(url.path, query)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                q = queue.Queue()
                try:
                    self.wfile.write(b": fake job events\n\n")
                    self.wfile.flush()
                    with outer.lock:
                        outer.streams.append(q)
                    while True:
                        item = q.get()
                        if item is None:
                            return  # dropped: the connection closes
                        self.wfile.write(item)
                        self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    with outer.lock:
                        if q in outer.streams:
                            outer.streams.remove(q)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def publish(self, event, name="job"):
        data = f"event: {name}\ndata: {json.dumps(event)}\n\n".encode()
        with self.lock:
            for q in self.streams:
                q.put(data)

    def drop(self):
        with self.lock:
            for q in self.streams:
                q.put(None)

    def open_streams(self):
        with self.lock:
            return len(self.streams)

    def count(self, path, **query):
        with self.lock:
            return sum(1 for p, q, _ in self.requests
                       if p == path and all(q.get(k) == str(v) for k, v in query.items()))

    def close(self):
        self.drop()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def events_api():
    apis = []

    def make(handler, events=True):
        apis.append(EventsApi(handler, events))
        return apis[-1]

    yield make
    for a in apis:
        a.close()


class Cli:
    """``stratq ARGS`` with its stdout read line by line in a thread."""

    def __init__(self, args, api_url):
        require_binary()
        env = dict(os.environ, STRATQ_API_URL=api_url)
        self.proc = subprocess.Popen([str(STRATQ_BIN), *args], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
        self.lines = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)

    def text(self):
        return "".join(self.lines)

    def finish(self, timeout=20):
        try:
            self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        self.thread.join(timeout=5)
        err = self.proc.stderr.read()
        self.proc.stderr.close()
        assert not sanitizer_findings(err), err
        return self.proc.returncode, err

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# --------------------------------------------------------------------------
# logs -f
# --------------------------------------------------------------------------


def logs_handler(state):
    def handler(path, query):
        if path != "/v1/jobs/j1/logs":
            return 404, {"error": "no route"}
        out, off = state["stdout"], int(query.get("stdout_offset", 0))
        return 200, {"id": "j1", "status": state["status"], "stdout": out[off:], "stderr": "",
                     "stdout_offset": len(out), "stderr_offset": 0, "log": [], "log_offset": 0,
                     "done": state["status"] in ("succeeded", "failed")}
    return handler


LOGS = "/v1/jobs/j1/logs"


def succeed(api, cli, state, stdout):
    """j1 ends with stdout and says so: -f reads it, prints it all and
    exits 0, having opened one stream."""
    state.update(status="succeeded", stdout=stdout)
    api.publish({"id": "j1", "status": "succeeded"})
    rc, err = cli.finish()
    assert rc == 0, err
    assert cli.text() == stdout, cli.lines
    assert api.count("/v1/events") == 1


def test_logs_follow_waits_on_the_jobs_events(events_api):
    state = {"status": "queued", "stdout": ""}
    api = events_api(logs_handler(state))
    cli = Cli(["logs", "j1", "-f"], api.url)
    try:
        wait_for(lambda: api.count(LOGS) == 1 and api.open_streams() == 1, 20,
                 lambda: f"one read with the stream open: {api.requests}")
        # The stream was open before the first read, so no change after it
        # can be missed.
        assert [r[0] for r in api.requests] == ["/v1/events", LOGS], api.requests
        # Queued: nothing to print until it runs, so nothing is read, however
        # many other jobs change meanwhile.
        api.publish({"id": "other", "status": "running", "worker": "w", "attempt": 1})
        time.sleep(1.5)
        assert api.count(LOGS) == 1, api.requests

        state.update(status="running", stdout="a\n")
        api.publish({"id": "j1", "status": "running", "worker": "w", "attempt": 1})
        wait_for(lambda: cli.lines == ["a\n"], 10, lambda: f"'a' printed: {cli.lines}")
        # Running, and no output event: read again after the safety interval
        # (5 s), never in a busy loop.
        state["stdout"] = "a\nb\n"
        wait_for(lambda: cli.lines == ["a\n", "b\n"], 10, lambda: f"'b' printed: {cli.lines}")
        reads = [t for p, _, t in api.requests if p == LOGS]
        assert all(b - a >= 0.2 for a, b in zip(reads[2:], reads[3:])), reads

        # Its end is read at once.
        succeed(api, cli, state, "a\nb\nc\n")
    finally:
        cli.close()


def output_event(job_id, stdout):
    return {"id": job_id, "output": {"stdout": stdout, "stderr": 0, "log": 0, "progress": False}}


def test_logs_follow_reads_a_running_job_on_its_output_events(events_api):
    """While the job runs, -f reads its logs when an `event: output` for it
    comes, not every 250 ms: with no such event, at most a couple of reads
    in 2 s; with one, a read at once."""
    state = {"status": "running", "stdout": "a\n"}
    api = events_api(logs_handler(state))
    cli = Cli(["logs", "j1", "-f"], api.url)
    try:
        wait_for(lambda: api.count(LOGS) == 1 and api.open_streams() == 1 and cli.lines == ["a\n"], 20,
                 lambda: f"one read with the stream open: {api.requests} {cli.lines}")
        # Other jobs' output, and its own `job` events' readers, change
        # nothing: 2 s, no read.
        api.publish(output_event("other", 10), "output")
        time.sleep(2)
        assert api.count(LOGS) <= 2, api.requests

        # Its output event: read at once.
        state["stdout"] = "a\nb\n"
        before = api.count(LOGS)
        sent = time.monotonic()
        api.publish(output_event("j1", 2), "output")
        wait_for(lambda: cli.lines == ["a\n", "b\n"], 10, lambda: f"'b' printed: {cli.lines}")
        reads = [t for p, _, t in api.requests if p == LOGS][before:]
        assert reads and reads[0] - sent < 1.0, (sent, reads)
        # A second one, a second read.
        state["stdout"] = "a\nb\nc\n"
        api.publish(output_event("j1", 2), "output")
        wait_for(lambda: cli.lines == ["a\n", "b\n", "c\n"], 3, lambda: f"'c' printed: {cli.lines}")

        succeed(api, cli, state, "a\nb\nc\nd\n")
    finally:
        cli.close()


def test_logs_follow_reconnects_a_dropped_stream(events_api):
    state = {"status": "queued", "stdout": ""}
    api = events_api(logs_handler(state))
    cli = Cli(["logs", "j1", "-f"], api.url)
    try:
        wait_for(lambda: api.count(LOGS) == 1 and api.open_streams() == 1, 20, "the first read")
        api.drop()
        # Opened again, then the logs read again (an event may have been
        # missed in between); then it waits on the events again.
        wait_for(lambda: api.count("/v1/events") == 2 and api.count(LOGS) == 2 and api.open_streams() == 1,
                 20, lambda: f"a second stream and a second read: {api.requests}")
        paths = [r[0] for r in api.requests]
        assert paths.index("/v1/events", 1) < len(paths) - 1 - paths[::-1].index(LOGS), paths
        time.sleep(1)
        assert api.count(LOGS) == 2, api.requests
        state.update(status="succeeded", stdout="done\n")
        api.publish({"id": "j1", "status": "succeeded"})
        rc, err = cli.finish()
    finally:
        cli.close()
    assert rc == 0, err
    assert cli.text() == "done\n"


# --------------------------------------------------------------------------
# monitor
# --------------------------------------------------------------------------


def now_ms():
    return int(time.time() * 1000)


def job(job_id, status, ago_s, run_s=1.0, wait_s=0.5):
    fin = now_ms() - int(ago_s * 1000)
    start = fin - int(run_s * 1000)
    return {"id": job_id, "status": status, "attempts": 1, "created_ms": start - int(wait_s * 1000),
            "started_ms": start, "finished_ms": fin, "worker": "w1"}


# The bounds of GET /v1/queue's histograms (QUEUE_BUCKETS, in ms).
LE_MS = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 900000, 3600000]


def histogram(times_ms):
    """GET /v1/queue's form of a histogram of these times."""
    return {"le_ms": LE_MS, "counts": [sum(t <= le for t in times_ms) for le in LE_MS],
            "count": len(times_ms), "sum_ms": sum(times_ms)}


def monitor_handler(state):
    def handler(path, query):
        if path == "/v1/queue":
            return 200, {"queue": "python_execution_queue", "pending": 0, "processing": 0,
                         "scheduled": 0, "dead": 0, "workers": 1,
                         "histograms": {"run": histogram(state.get("runs", [])),
                                        "wait": histogram(state.get("waits", []))}}
        if path == "/v1/workers":
            return 200, {"workers": [{"id": "w1", "host": "elsewhere", "pid": 1, "state": state["state"],
                                      "current_job": state["current"], "jobs_done": 1, "jobs_failed": 0,
                                      "last_heartbeat_ms": now_ms()}]}
        if path == "/v1/jobs":
            jobs = state["jobs"].get(query.get("status"), [])
            return 200, {"jobs": jobs[: int(query.get("limit", 50))], "next_cursor": None}
        return 404, {"error": "no route"}
    return handler


def reports(cli):
    """The complete text reports printed so far (each ends with a blank
    line)."""
    return [r for r in cli.text().split("\n\n")[:-1] if r.strip()]


def listing(api, limit):
    return sum(api.count("/v1/jobs", status=s, limit=limit) for s in ("succeeded", "failed", "running"))


def test_monitor_follows_the_event_stream(events_api):
    state = {"state": "idle", "current": None, "runs": [1000], "waits": [500],
             "jobs": {"succeeded": [job("s1", "succeeded", 5)], "failed": [], "running": []}}
    api = events_api(monitor_handler(state))
    cli = Cli(["monitor"], api.url)
    try:
        wait_for(lambda: len(reports(cli)) >= 4, 30, lambda: f"four reports: {cli.text()[-2000:]}")
        # The listings were read once, when the stream opened; since then each
        # refresh reads the queue and the workers only.
        assert api.count("/v1/events") == 1
        assert listing(api, 500) == 3 and listing(api, 100) == 0, api.requests
        assert api.count("/v1/queue") >= 4
        assert "throughput  1/min  (1 succeeded, 0 failed in the last 60 s)" in reports(cli)[-1]
        # s1 finished before the monitor started: not in its window.
        assert "run time    p50 -        p95 -        mean -        (0 finished, since the monitor started)" \
            in reports(cli)[-1], reports(cli)[-1]

        # A job succeeds: counted from its event, no listing read. Its times
        # come with the histograms (the workers add them with heartbeats):
        # the window holds it alone, a run in (2.5 s, 5 s] and a wait in
        # (500, 1000] ms, interpolated within them (docs/operations.md).
        state["jobs"]["succeeded"].insert(0, job("s2", "succeeded", 0, run_s=3))
        api.publish({"id": "s2", "status": "succeeded"})
        wait_for(lambda: "throughput  2/min  (2 succeeded, 0 failed" in reports(cli)[-1], 10,
                 lambda: f"the succeeded event counted: {reports(cli)[-1]}")
        state.update(runs=[1000, 3000], waits=[500, 600])
        wait_for(lambda: "(1 finished, since the monitor started)" in reports(cli)[-1]
                 and "(1 started, since the monitor started)" in reports(cli)[-1], 10,
                 lambda: f"s2's run and wait in the window: {reports(cli)[-1]}")
        rep = reports(cli)[-1]
        assert "run time    p50 3.7s     p95 4.8s     mean 3.0s     (1 finished, since the monitor started)" \
            in rep, rep  # 2500 + 2500 * 0.5 = 3750, + 2500 * 0.95 = 4875
        assert "wait time   p50 750ms    p95 975ms    mean 600ms    (1 started, since the monitor started)" \
            in rep, rep  # 500 + 500 * 0.5, 500 + 500 * 0.95
        # A failed job: counted, nothing read.
        api.publish({"id": "f1", "status": "failed"})
        wait_for(lambda: "throughput  3/min  (2 succeeded, 1 failed" in reports(cli)[-1], 10,
                 lambda: f"the failed event counted: {reports(cli)[-1]}")
        assert listing(api, 500) == 3 and listing(api, 100) == 0, api.requests

        # A job starts: its time runs from its event; the running listing is
        # not read.
        api.publish({"id": "r1", "status": "running", "worker": "w1", "attempt": 1})
        state.update(state="busy", current="r1")
        wait_for(lambda: "r1" in reports(cli)[-1], 10, lambda: f"r1 shown: {reports(cli)[-1]}")
        row = next(line for line in reports(cli)[-1].splitlines() if "r1" in line)
        assert row.split()[4] != "-", row  # ELAPSED
        assert listing(api, 500) == 3, api.requests

        # The stats start again (their hash was reset): so does the window.
        state.update(runs=[], waits=[])
        wait_for(lambda: "(0 finished, since the monitor started)" in reports(cli)[-1], 10,
                 lambda: f"the window started again: {reports(cli)[-1]}")
        state.update(runs=[700], waits=[600])
        wait_for(lambda: "(1 finished, since the monitor started)" in reports(cli)[-1]
                 and "(1 started, since the monitor started)" in reports(cli)[-1], 10,
                 lambda: f"a run after the reset: {reports(cli)[-1]}")
        assert "run time    p50 750ms    p95 975ms    mean 700ms    (1 finished" in reports(cli)[-1], \
            reports(cli)[-1]

        # The stream drops: opened again, and everything read again.
        api.drop()
        wait_for(lambda: api.count("/v1/events") == 2 and listing(api, 500) == 6, 20,
                 lambda: f"a new stream and a full read: {api.requests}")
        cli.proc.send_signal(signal.SIGTERM)
        rc, err = cli.finish()
    finally:
        cli.close()
    assert rc == 0, err


def test_monitor_without_an_event_stream_reads_everything_each_second(events_api):
    """An API without GET /v1/events (404): every refresh reads the
    listings, as one report does, and the stream is asked for again, less
    and less often."""
    state = {"state": "idle", "current": None,
             "jobs": {"succeeded": [job("s1", "succeeded", 5)], "failed": [], "running": []}}
    api = events_api(monitor_handler(state), events=False)
    cli = Cli(["monitor"], api.url)
    try:
        wait_for(lambda: len(reports(cli)) >= 4, 30, lambda: f"four reports: {cli.text()[-2000:]}")
        cli.proc.send_signal(signal.SIGTERM)
        rc, err = cli.finish()
    finally:
        cli.close()
    assert rc == 0, err
    assert listing(api, 500) >= 4 * 3, api.requests
    # Asked at the start, then after 1 s and 2 s more: at most 3 in 4 s.
    assert 1 <= api.count("/v1/events") <= 3, api.requests
    assert "throughput  1/min  (1 succeeded, 0 failed in the last 60 s)" in reports(cli)[-1]
