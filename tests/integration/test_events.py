"""The API's events room (src/api/events.c): its one subscription to the
events channel feeds GET /v1/events (Server-Sent Events: `job` and
`output` events) and wakes the long-poll waiters of ?wait=, a thousand of
them on that one subscription."""

import json
import resource
import selectors
import socket
import textwrap
import threading
import time

from conftest import PREFIX, TERMINAL, EventStream, wait_for

RETURN_7 = "def run(ctx):\n    return 7\n"
SLEEPER = "import time\n\ndef run(ctx):\n    time.sleep(ctx.params.get('s', 30))\n    return 'woke'\n"


# --------------------------------------------------------------------------
# GET /v1/events
# --------------------------------------------------------------------------


def read_sse_until(sock, pred, timeout):
    """Reads SSE job events from sock until pred(event dict) is true."""
    buf = b""
    deadline = time.monotonic() + timeout
    events = []
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        buf += chunk
        # Only `event: job` blocks: a running job's `event: output` carries
        # no status (docs/api.md).
        for block in buf.split(b"\n\n"):
            lines = block.split(b"\n")
            if b"event: job" not in lines:
                continue
            for line in lines:
                if not line.startswith(b"data: "):
                    continue
                try:
                    ev = json.loads(line[6:])
                except ValueError:
                    continue
                if ev not in events:
                    events.append(ev)
                    if pred(ev):
                        return events
    raise AssertionError(f"no matching event within {timeout}s; saw {events}")


def test_events_stream(stack):
    api_proc = stack.start_api()
    api = api_proc.client
    stack.start_worker()
    sock = socket.create_connection(("127.0.0.1", api_proc.port))
    try:
        sock.sendall(b"GET /v1/events HTTP/1.1\r\nHost: x\r\n\r\n")
        head = sock.recv(4096)
        assert b"200" in head.split(b"\r\n")[0] and b"text/event-stream" in head, head
        job_id = api.submit({"code": RETURN_7})
        events = read_sse_until(sock, lambda e: e.get("id") == job_id and e["status"] in TERMINAL, 30)
        statuses = [e["status"] for e in events if e.get("id") == job_id]
        assert statuses == ["queued", "running", "succeeded"], events
    finally:
        sock.close()
    # The API goes on serving after the client went away.
    assert api.healthy()


PRINTS_EVERY_300_MS = textwrap.dedent(
    """
    import time
    def run(ctx):
        for i in range(8):
            print("line", i, flush=True)
            time.sleep(0.3)
        return 1
    """
)


def test_live_output_comes_as_output_events(stack):
    """A running job that prints: its worker publishes an output event with
    each live batch, which GET /v1/events sends as `event: output` (the
    dashboard and other readers of `event: job` see nothing new); its `job`
    events are what they were."""
    api_proc = stack.start_api()
    api = api_proc.client
    stack.start_worker()
    stream = EventStream(api_proc.port)
    try:
        job_id = api.submit({"code": PRINTS_EVERY_300_MS})
        stream.until(lambda evs: any(e.get("id") == job_id and e["status"] in TERMINAL for e in evs), 60)
    finally:
        stream.close()
    mine = [(n, e) for n, e in stream.pairs if e.get("id") == job_id]
    assert {n for n, _ in mine} == {"job", "output"}, mine
    jobs = [e for n, e in mine if n == "job"]
    assert [e["status"] for e in jobs] == ["queued", "running", "succeeded"], mine
    assert jobs[1]["attempt"] == 1 and "output" not in jobs[1], jobs
    outputs = [e for n, e in mine if n == "output"]
    # Several batches while it ran (one every 200 ms at most), each between
    # its running and succeeded events, none with a status.
    names = [n for n, _ in mine]
    assert names[:2] == ["job", "job"] and names[-1] == "job", names
    assert len(outputs) >= 3, outputs
    for e in outputs:
        assert set(e) == {"id", "output"} and "status" not in e, e
        assert set(e["output"]) == {"stdout", "stderr", "log", "progress"}, e
        assert e["output"]["stderr"] == 0 and e["output"]["log"] == 0 and e["output"]["progress"] is False
    job = api.wait_job(job_id)
    assert job["stdout"] == "".join(f"line {i}\n" for i in range(8)), job
    # The sizes are the batches' bytes: together, at most what it printed.
    assert 0 < sum(e["output"]["stdout"] for e in outputs) <= len(job["stdout"]), outputs


# --------------------------------------------------------------------------
# Long polls (?wait=)
# --------------------------------------------------------------------------


def test_get_with_wait_returns_when_the_job_finishes(stack):
    api = stack.start_api().client
    stack.start_worker()
    job_id = api.submit({"code": SLEEPER, "params": {"s": 0.5}})
    t0 = time.monotonic()
    status, body = api.get(f"/v1/jobs/{job_id}?wait=30", timeout=40)
    assert status == 200 and body["status"] == "succeeded" and body["result"] == "woke", body
    # Woken by the completion, not by the end of the wait.
    assert time.monotonic() - t0 < 20


def test_wait_ends_after_s_seconds_with_the_current_status(stack):
    api = stack.start_api().client  # no worker: the job stays queued
    job_id = api.submit({"code": RETURN_7})
    t0 = time.monotonic()
    status, body = api.get(f"/v1/jobs/{job_id}?wait=1", timeout=10)
    waited = time.monotonic() - t0
    assert status == 200 and body["status"] == "queued", body
    assert waited >= 0.9, waited
    status, body = api.get(f"/v1/jobs/{job_id}/result?wait=1", timeout=10)
    assert status == 202 and body == {"id": job_id, "status": "queued"}, body
    for bad in ("61", "-1", "x"):
        status, body = api.get(f"/v1/jobs/{job_id}?wait={bad}")
        assert status == 400 and "wait" in body["error"], (bad, body)


def test_submit_with_wait_runs_synchronously(stack):
    api = stack.start_api().client
    stack.start_worker()
    status, body = api.post("/v1/jobs?wait=30", {"code": RETURN_7}, timeout=40)
    assert status == 201, body
    assert body["status"] == "succeeded" and body["result"] == 7, body


def test_a_thousand_long_poll_waiters_share_one_subscription(stack, r):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    api_proc = stack.start_api()
    api = api_proc.client
    status, body = api.post("/v1/jobs/batch", {"jobs": [{"code": RETURN_7}] * 200})
    assert status == 200
    ids = [item["id"] for item in body["jobs"]]
    sel = selectors.DefaultSelector()
    socks = []
    for i in range(1000):
        s = socket.create_connection(("127.0.0.1", api_proc.port))
        s.sendall(f"GET /v1/jobs/{ids[i % 200]}?wait=60 HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, {"buf": b"", "id": ids[i % 200]})
        socks.append(s)
    try:
        # All 1,000 are waiting, and the API holds a handful of Redis
        # connections (commands + the one subscription), not one per waiter.
        wait_for(lambda: api.get("/metrics")[0] == 200, 10, "the API to answer while waiters wait")
        clients = [c for c in r.client_list() if c["name"].startswith("stratq-api")]
        assert 1 <= len(clients) <= 4, clients
        stack.start_workers(2)
        done = 0
        deadline = time.monotonic() + 180
        while done < 1000 and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=1):
                data = key.fileobj.recv(65536)
                key.data["buf"] += data
                buf = key.data["buf"]
                if b"\r\n\r\n" in buf:
                    head, _, rest = buf.partition(b"\r\n\r\n")
                    length = int([h.split(b":")[1] for h in head.split(b"\r\n")
                                  if h.lower().startswith(b"content-length")][0])
                    if len(rest) >= length:
                        body = json.loads(rest[:length])
                        assert body["id"] == key.data["id"] and body["status"] == "succeeded", body
                        sel.unregister(key.fileobj)
                        done += 1
        assert done == 1000, f"only {done} of 1000 waiters were answered"
    finally:
        for s in socks:
            s.close()


# --------------------------------------------------------------------------
# A long poll's reads and the terminal event, in either order
# --------------------------------------------------------------------------

SLEEPS = "import time\n\ndef run(ctx):\n    time.sleep(ctx.params['s'])\n    return 7\n"


class HoldingProxy:
    """A TCP proxy to Redis that can hold back what Redis answers on any
    connection that has sent a given string (the API's command connection,
    once it reads a given job), until released: a reply the API asked for
    then arrives after things that happened later (an event on its other
    connection, the answer to its next command)."""

    def __init__(self, port):
        self.port = port
        self.lock = threading.Lock()
        self.watch = None      # bytes: a connection that sends it is held
        self.sent = 0          # how many commands holding `watch` went up
        self.held = []         # (socket, data) not yet passed down
        self.holding = False
        self.srv = socket.create_server(("127.0.0.1", 0))
        self.url = f"redis://127.0.0.1:{self.srv.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.srv.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.port))
            state = {"watched": False}
            threading.Thread(target=self._up, args=(client, upstream, state), daemon=True).start()
            threading.Thread(target=self._down, args=(upstream, client, state), daemon=True).start()

    def _up(self, src, dst, state):
        while data := _recv(src):
            with self.lock:
                if self.watch and self.watch in data:
                    state["watched"] = True
                    self.sent += data.count(self.watch)
            dst.sendall(data)
        dst.close()

    def _down(self, src, dst, state):
        while data := _recv(src):
            with self.lock:
                if self.holding and state["watched"]:
                    self.held.append((dst, data))
                    continue
            dst.sendall(data)
        dst.close()

    def release(self):
        with self.lock:
            self.holding = False
            for dst, data in self.held:
                dst.sendall(data)
            self.held = []

    def close(self):
        self.srv.close()


def _recv(s):
    try:
        return s.recv(65536)
    except OSError:
        return b""


def test_a_wait_answers_the_read_made_after_the_jobs_end_not_one_made_before(stack, r):
    # GET ?wait= reads the job, and reads it again on its terminal event. A
    # read already under way when the event comes saw the job unfinished:
    # the API must answer from the read made after the event, whichever of
    # the two answers it handles first.
    proxy = HoldingProxy(stack.redis_server.port)
    try:
        api = stack.start_api_ready(["--redis-url", proxy.url]).client
        stack.start_worker()
        job_id = api.submit({"code": SLEEPS, "params": {"s": 1.5}})
        key = f"{PREFIX}:job:{job_id}"
        wait_for(lambda: r.hget(key, "status") == "running", 30, "the job to run")
        with proxy.lock:
            proxy.watch, proxy.holding = job_id.encode(), True
        answer = {}
        t = threading.Thread(target=lambda: answer.update(
            zip(("status", "body"), api.get(f"/v1/jobs/{job_id}?wait=30", timeout=40))))
        t.start()
        # The API's first read went up and Redis answered "running": held.
        wait_for(lambda: proxy.held, 10, "the API's first read of the job, answered and held")
        wait_for(lambda: r.hget(key, "status") == "succeeded", 30, "the job to succeed")
        # Its terminal event came on the other connection: the second read.
        wait_for(lambda: proxy.sent >= 2, 10, "the API to read the job again on its event")
        proxy.release()
        t.join(40)
        assert answer.get("status") == 200, answer
        assert answer["body"]["status"] == "succeeded" and answer["body"]["result"] == 7, answer
    finally:
        proxy.release()
        proxy.close()
