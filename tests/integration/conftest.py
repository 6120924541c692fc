"""Fixtures for the black-box integration suite.

The suite starts a real redis-server and the real ``stratq`` binary
(``$STRATQ_BIN``, default ``build/asan/stratq``, with the executor program
``stratq-executor`` beside it) and talks to them the way a
user or another backend would: HTTP (standard library only), the CLI, and
plain redis-py. Nothing here imports stratq code.

Waiting is always on a condition with a deadline (``wait_for``), never a
bare sleep. Every process a test starts is stopped by its pid at teardown
(SIGTERM, then SIGKILL to its process group if it ignores the deadline), and
its log is scanned for sanitizer reports. When a test fails, the tail of each
daemon's log is attached to the report.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import redis

REPO_ROOT = Path(__file__).resolve().parents[2]

# Process and polling helpers are shared with the chaos and soak scripts,
# which run without pytest.
sys.path.insert(0, str(REPO_ROOT / "tests" / "chaos"))
from stack import (  # noqa: E402  (children, job_pid, pid_alive, pids_named are for the tests)
    children,
    free_port,
    job_pid,
    pid_alive,
    pids_named,
    sanitizer_findings,
    wait_for,
)
EXAMPLES = REPO_ROOT / "examples"
STRATQ_BIN = Path(os.environ.get("STRATQ_BIN", REPO_ROOT / "build" / "asan" / "stratq"))
# The program the worker runs as its executor: always the one beside the binary.
EXECUTOR_BIN = STRATQ_BIN.parent / "stratq-executor"
REDIS_SERVER = os.environ.get("STRATQ_TEST_REDIS_SERVER", "/usr/bin/redis-server")

PREFIX = "stratq:{python_execution_queue}"  # what every key but the queue list starts with
QUEUE = "python_execution_queue"
WORKERS_KEY = f"{PREFIX}:workers"
EVENTS_CHANNEL = f"{PREFIX}:events"

TERMINAL = frozenset(
    {
        "succeeded",
        "failed",
        "timeout",
        "memory_exceeded",
        "cpu_exceeded",
        "output_exceeded",
        "crashed",
        "cancelled",
        "dead",
    }
)
def waiting_ids(r):
    """The ids of the jobs waiting to be taken: those pushed straight onto
    the queue list, and those of the tenants' backlogs, whose queue entries
    are tickets (docs/protocol.md, "Tenants, priorities and fair share")."""
    direct = [e for e in r.lrange(QUEUE, 0, -1) if e != "*"]
    fair = [i for k in r.scan_iter(f"{PREFIX}:fair:bk:*") for i in r.zrange(k, 0, -1)]
    return direct + fair


JOB_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

# Lines that mean a sanitizer caught a bug in the binary.
# Deadlines. These bound how long we wait for a condition; they are not
# performance expectations, so they are generous for an ASan build.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
JOB_TIMEOUT = 60.0


# --------------------------------------------------------------------------
# Generic helpers
# --------------------------------------------------------------------------


def tail(text, lines=40):
    return "\n".join(text.splitlines()[-lines:])


def _proc_table():
    """[(pid, ppid, pgrp, comm)] for every live process."""
    rows = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] in ("Z", "X"):
            continue
        rows.append((int(entry), int(fields[1]), int(fields[2]), comm))
    return rows


def descendants(pid):
    """{pid: comm} of every live descendant of ``pid``."""
    table = _proc_table()
    kids = {}
    for p, ppid, _, comm in table:
        kids.setdefault(ppid, []).append((p, comm))
    found, todo = {}, [pid]
    while todo:
        for child, comm in kids.get(todo.pop(), []):
            if child not in found:
                found[child] = comm
                todo.append(child)
    return found


def process_group_members(pgid):
    return {p: comm for p, _, pg, comm in _proc_table() if pg == pgid}


# --------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------

_NO_BODY = object()
# Talk to the API directly even if a proxy is configured in the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Api:
    """A tiny HTTP/JSON client for the stratq API (urllib only). With a
    ``token`` it sends ``Authorization: Bearer <token>``."""

    def __init__(self, base_url, token=None):
        self.base_url = base_url.rstrip("/")
        self.token = token

    def request(self, method, path, json_body=_NO_BODY, raw=None, headers=None, timeout=30):
        """Return (status, body) where body is parsed JSON when it parses,
        else the text."""
        data = raw
        hdrs = dict(headers or {})
        if self.token is not None:
            hdrs.setdefault("Authorization", f"Bearer {self.token}")
        if json_body is not _NO_BODY:
            data = json.dumps(json_body).encode()
        if data is not None:
            hdrs.setdefault("Content-Type", "application/json")
        req = urllib.request.Request(self.base_url + path, data=data, method=method, headers=hdrs)
        try:
            with _OPENER.open(req, timeout=timeout) as resp:
                status, payload = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            status, payload = e.code, e.read()
        try:
            body = json.loads(payload) if payload else None
        except ValueError:
            body = payload.decode(errors="replace")
        return status, body

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=_NO_BODY, **kw):
        return self.request("POST", path, json_body=body, **kw)

    def healthy(self):
        try:
            status, body = self.get("/healthz", timeout=2)
        except OSError:
            return False
        return status == 200 and isinstance(body, dict) and body.get("status") == "ok"

    def submit(self, spec):
        """POST a job spec; assert 201 and return the new id."""
        status, body = self.post("/v1/jobs", spec)
        assert status == 201, f"POST /v1/jobs {spec!r} -> {status} {body!r}"
        assert isinstance(body, dict) and body.get("status") == "queued", body
        assert JOB_ID_RE.match(str(body.get("id"))), f"bad job id in {body!r}"
        return body["id"]

    def job(self, job_id):
        status, body = self.get(f"/v1/jobs/{job_id}")
        assert status == 200, f"GET /v1/jobs/{job_id} -> {status} {body!r}"
        return body

    def queue(self):
        status, body = self.get("/v1/queue")
        assert status == 200, f"GET /v1/queue -> {status} {body!r}"
        return body

    def wait_status(self, job_id, statuses, timeout=JOB_TIMEOUT):
        """Poll until the job's status is in ``statuses``; return the record."""
        statuses = frozenset([statuses] if isinstance(statuses, str) else statuses)
        last = {}

        def reached():
            last["job"] = self.job(job_id)
            return last["job"] if last["job"].get("status") in statuses else None

        return wait_for(
            reached, timeout, lambda: f"job {job_id} to reach {sorted(statuses)}; last: {last.get('job')!r}"
        )

    def wait_printed(self, job_id, text="\n", timeout=30):
        """Waits, through the live log, until the job's stdout contains
        ``text`` (by default: until it has printed a line), so that the test
        knows the job's code is running; returns the stdout. (A job cannot
        tell its host pid; find its processes with job_pid() instead.)"""
        last = {}

        def printed():
            status, body = self.get(f"/v1/jobs/{job_id}/logs")
            last["logs"] = body
            return body["stdout"] if status == 200 and text in body["stdout"] else None

        return wait_for(printed, timeout, lambda: f"job {job_id} to print {text!r}; last: {last.get('logs')!r}")

    def wait_job(self, job_id, timeout=JOB_TIMEOUT):
        """Poll until the job reaches a terminal status; return the record."""
        return self.wait_status(job_id, TERMINAL, timeout)


# --------------------------------------------------------------------------
# Redis server (one per session; flushed before every test)
# --------------------------------------------------------------------------


class RedisServer:
    def __init__(self, port, proc, log_path):
        self.port = port
        self.proc = proc
        self.log_path = log_path
        self.url = f"redis://127.0.0.1:{port}"

    def client(self, **kw):
        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True, **kw)


class EventStream:
    """GET /v1/events on the API at port, read as it comes: the data of
    its `job` events in events, of its `output` events (a running job wrote
    output; no status) in outputs, and every (name, data) in order in
    pairs."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.sendall(b"GET /v1/events HTTP/1.1\r\nHost: x\r\n\r\n")
        self.buf = b""
        self.events, self.outputs, self.pairs = [], [], []
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            assert chunk, f"the events stream closed: {self.buf!r}"
            self.buf += chunk
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        assert b" 200 " in head.split(b"\r\n")[0] and b"text/event-stream" in head, head

    def until(self, pred, timeout=30):
        """Reads events until pred(the job events so far) holds; returns
        them."""
        deadline = time.monotonic() + timeout
        while not pred(self.events):
            left = deadline - time.monotonic()
            assert left > 0, f"events stream: condition not met within {timeout}s; saw {self.pairs}"
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            assert chunk, f"the events stream closed; saw {self.pairs}"
            self.buf += chunk
            *blocks, self.buf = self.buf.split(b"\n\n")
            for block in blocks:
                lines = block.split(b"\n")
                name = next((line[7:].decode() for line in lines if line.startswith(b"event: ")), "")
                for line in lines:
                    if line.startswith(b"data: "):
                        data = json.loads(line[6:])
                        self.pairs.append((name, data))
                        {"job": self.events, "output": self.outputs}.get(name, []).append(data)
        return self.events

    def statuses(self, job_id):
        return [e["status"] for e in self.events if e.get("id") == job_id]

    def close(self):
        self.sock.close()


class Subscriber:
    """One channel subscribed on one node with SUBSCRIBE, or with SSUBSCRIBE
    (sharded pub/sub, Redis 7: what stratq uses on Redis Cluster, and which
    redis-py 4.3's PubSub does not know), on a raw connection. The reply to
    the subscribe is ``reply`` (an error reply, such as a MOVED from a node
    that does not own the channel's slot, raises)."""

    def __init__(self, port, channel, command="SUBSCRIBE"):
        self.conn = redis.connection.Connection(host="127.0.0.1", port=port, socket_timeout=10,
                                                decode_responses=True)
        self.conn.send_command(command, channel)
        try:
            self.reply = self.conn.read_response()
        except BaseException:
            self.conn.disconnect()
            raise

    def get(self, timeout=0.2):
        """The next message (``[kind, channel, data]``), or None when none
        came within timeout seconds."""
        if self.conn.can_read(timeout=timeout):
            return self.conn.read_response()
        return None

    def events(self, timeout=0.2):
        """The JSON events of the messages that came within timeout seconds
        of each other."""
        out = []
        while (m := self.get(timeout)) is not None:
            if m[0] in ("message", "smessage"):
                out.append(json.loads(m[2]))
        return out

    def close(self):
        self.conn.disconnect()


# Workers preload numpy and pandas by default (STRATQ_PRELOAD), which costs
# each worker start about a second under ASan. The modules where what a job
# imports matters (examples, isolation, SDK, the sandbox, the executor) keep
# the default; elsewhere the tests' workers preload nothing, which is still
# warm mode (jobs fork from an interpreter holding the harness). A module
# opts in with PRELOAD = True; STRATQ_PRELOAD in the environment wins.
PRELOAD_MODULES = {"test_examples", "test_isolation", "test_sdk", "test_sandbox", "test_sandbox_layers",
                   "test_executor"}


@pytest.fixture(scope="module", autouse=True)
def _worker_preload(request):
    if "STRATQ_PRELOAD" in os.environ or getattr(request.module, "PRELOAD", False) or \
            request.module.__name__.rpartition(".")[2] in PRELOAD_MODULES:
        yield
        return
    os.environ["STRATQ_PRELOAD"] = ""
    try:
        yield
    finally:
        os.environ.pop("STRATQ_PRELOAD", None)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    assert os.access(REDIS_SERVER, os.X_OK), f"redis-server not found at {REDIS_SERVER}"
    workdir = tmp_path_factory.mktemp("redis")
    port = free_port()
    log_path = workdir / "redis.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(workdir),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = RedisServer(port, proc, log_path)
    client = server.client(socket_timeout=2)

    def ping():
        assert proc.poll() is None, f"redis-server exited: {log_path.read_text(errors='replace')}"
        try:
            return client.ping()
        except redis.exceptions.ConnectionError:
            return False

    try:
        wait_for(ping, START_TIMEOUT, f"redis-server on port {port} to answer PING")
        yield server
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(autouse=True)
def r(redis_server):
    """A redis client on an empty database (FLUSHALL before each test)."""
    client = redis_server.client()
    client.flushall()
    yield client
    client.close()


# --------------------------------------------------------------------------
# stratq processes
# --------------------------------------------------------------------------


def require_binary():
    for path in (STRATQ_BIN, EXECUTOR_BIN):
        if not (path.is_file() and os.access(path, os.X_OK)):
            pytest.fail(
                f"{path.name} not found or not executable at {path}; build both programs with "
                f"`make -C {REPO_ROOT} build/asan/stratq` or point STRATQ_BIN at a stratq "
                f"with its stratq-executor beside it",
                pytrace=False,
            )
    return STRATQ_BIN


def install_copy(bin_dir):
    """Copies both programs into ``bin_dir`` (they must stay side by side)
    and returns the copy of ``stratq``."""
    shutil.copy2(EXECUTOR_BIN, Path(bin_dir) / EXECUTOR_BIN.name)
    return Path(shutil.copy2(STRATQ_BIN, Path(bin_dir) / "stratq"))


class Proc:
    """A stratq daemon started by a test. Output goes to ``log_path``."""

    def __init__(self, kind, popen, log_path):
        self.kind = kind
        self.popen = popen
        self.log_path = log_path
        self.returncode = None

    @property
    def pid(self):
        return self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_lines_json(self):
        """The log lines that parse as JSON objects."""
        out = []
        for line in self.log().splitlines():
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                out.append(obj)
        return out

    def describe(self):
        return f"{self.kind} pid {self.pid} (log {self.log_path}):\n{tail(self.log())}"


class ApiProc(Proc):
    port = None
    url = None
    client = None


class WorkerProc(Proc):
    id = None


class Stack:
    """Starts and stops stratq daemons for one test."""

    def __init__(self, tmp_path, redis_server):
        self.tmp_path = tmp_path
        self.redis_server = redis_server
        self.redis_url = redis_server.url
        self.r = redis_server.client()
        self.procs = []
        self._n = 0

    def spawn(self, kind, args, env=None, cls=Proc, user=None, binary=None):
        """Start ``stratq ARGS``. ``user``: a (uid, gid) to run it as
        (needs root), with no supplementary groups; ``binary``: another copy
        of the binary than $STRATQ_BIN."""
        require_binary()
        self._n += 1
        log_path = self.tmp_path / f"{kind}-{self._n}.log"
        full_env = dict(os.environ)
        full_env.update(env or {})
        as_user = {}
        if user is not None:
            as_user = {"user": user[0], "group": user[1], "extra_groups": []}
        with open(log_path, "wb") as log:
            popen = subprocess.Popen(
                [str(binary or STRATQ_BIN), *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=full_env,
                cwd=self.tmp_path,
                # Own process group, so a SIGKILL fallback reaches its children.
                start_new_session=True,
                **as_user,
            )
        proc = cls(kind, popen, log_path)
        self.procs.append(proc)
        return proc

    def _redis_url(self, env):
        """(args, env) that give a daemon the Redis URL: a URL with a
        password goes in the environment, as `stratq up` passes it, so that
        it is not in /proc/PID/cmdline; any other as --redis-url."""
        if "@" in self.redis_url:
            return [], {"STRATQ_REDIS_URL": self.redis_url, **(env or {})}
        return ["--redis-url", self.redis_url], env

    def start_api(self, env=None, args=(), token=None):
        """``token``: what the client sends as its bearer token (give the
        API a tokens file through ``env``)."""
        port = free_port()
        url_args, env = self._redis_url(env)
        proc = self.spawn("api", ["api", "--port", str(port), *url_args, *args], env, ApiProc)
        proc.port = port
        proc.url = f"http://127.0.0.1:{port}"
        proc.client = Api(proc.url, token=token)

        def ready():
            assert proc.alive(), f"stratq api exited with {proc.popen.returncode}\n{proc.describe()}"
            return proc.client.healthy()

        wait_for(ready, START_TIMEOUT, lambda: f"GET /healthz -> 200 ok from {proc.describe()}")
        return proc

    def start_api_ready(self, args, env=None, ready=True):
        """``stratq api --port P ARGS``, waited for until /readyz answers
        200 (with ``ready`` false: until it answers at all), for stacks
        whose Redis is found some other way than the URL."""
        port = free_port()
        proc = self.spawn("api", ["api", "--port", str(port), *args], env, ApiProc)
        proc.port = port
        proc.url = f"http://127.0.0.1:{port}"
        proc.client = Api(proc.url)

        def up():
            assert proc.alive(), f"stratq api exited\n{proc.describe()}"
            try:
                st, _ = proc.client.get("/readyz", timeout=2)
            except OSError:
                return False
            return st == 200 or not ready

        wait_for(up, START_TIMEOUT,
                 lambda: f"GET /readyz -> {'200' if ready else 'an answer'} from {proc.describe()}")
        return proc

    def worker_ids_by_pid(self):
        """{pid: worker id} for every worker registered in stratq:workers."""
        out = {}
        for wid in self.r.zrange(WORKERS_KEY, 0, -1):
            pid = self.r.hget(f"{PREFIX}:worker:{wid}", "pid")
            if pid and pid.isdigit():
                out[int(pid)] = wid
        return out

    def start_worker(self, env=None, args=(), user=None, binary=None):
        url_args, env = self._redis_url(env)
        proc = self.spawn("worker", ["worker", *url_args, *args], env, WorkerProc, user=user, binary=binary)

        def registered():
            assert proc.alive(), f"stratq worker exited with {proc.popen.returncode}\n{proc.describe()}"
            return self.worker_ids_by_pid().get(proc.pid)

        proc.id = wait_for(
            registered,
            START_TIMEOUT,
            lambda: f"worker pid {proc.pid} to register in {WORKERS_KEY} "
            f"(members: {self.r.zrange(WORKERS_KEY, 0, -1)})\n{proc.describe()}",
        )
        return proc

    def wait_listed(self, proc, api):
        """Waits until the worker ``proc`` is listed by ``api``'s
        GET /v1/workers (for stacks whose Redis this one cannot read
        directly); returns its id."""

        def listed():
            assert proc.alive(), f"stratq worker exited\n{proc.describe()}"
            st, body = api.client.get("/v1/workers")
            ids = [w["id"] for w in body.get("workers", []) if w.get("pid") == proc.pid] if st == 200 else []
            return ids[0] if ids else None

        return wait_for(listed, START_TIMEOUT, lambda: f"worker {proc.pid} to register\n{proc.describe()}")

    def start_workers(self, n, env=None):
        return [self.start_worker(env) for _ in range(n)]

    def worker_hash(self, worker):
        return self.r.hgetall(f"{PREFIX}:worker:{worker.id}")

    def stop(self, proc, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Signal ``proc`` by pid and wait for it; SIGKILL its process group
        if it outlives the deadline. Returns the exit status (negative for a
        signal, as Popen reports it)."""
        if proc.popen.poll() is None:
            try:
                proc.popen.send_signal(sig)
            except ProcessLookupError:
                pass
            try:
                proc.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._kill_group(proc.pid)
                proc.popen.wait()
        proc.returncode = proc.popen.returncode
        return proc.returncode

    @staticmethod
    def _kill_group(pgid):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def teardown(self):
        problems = []
        # Workers first, so nothing is left talking to a stopped API.
        for proc in sorted(self.procs, key=lambda p: p.kind == "api"):
            if proc.popen.poll() is None:
                self.stop(proc)
            # Anything left in the daemon's process group (its executor,
            # say) after the daemon exited has leaked.
            try:
                wait_for(
                    lambda: not process_group_members(proc.pid),
                    10,
                    f"the process group of {proc.kind} pid {proc.pid} to empty",
                )
            except AssertionError:
                left = process_group_members(proc.pid)
                self._kill_group(proc.pid)
                problems.append(f"{proc.kind} pid {proc.pid} left processes behind: {left}")
            found = sanitizer_findings(proc.log())
            if found:
                problems.append(f"sanitizer report in {proc.describe()}\nfirst: {found[0]}")
        self.r.close()
        return problems


def serve_stack(request, s):
    """The body of a stack fixture (``yield from serve_stack(request,
    s)``): the test gets ``s``, its daemons' logs go into a failure's
    report, and what they leave behind fails the test."""
    request.node._stratq_stack = s
    yield s
    problems = s.teardown()
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture
def stack(tmp_path, redis_server, request):
    yield from serve_stack(request, Stack(tmp_path, redis_server))


@pytest.fixture
def api(stack):
    """A running API's client (no worker)."""
    return stack.start_api().client


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------


def run_cli(args, api_url, env=None, timeout=120, cwd=None):
    """Run ``stratq ARGS`` against ``api_url``; return the CompletedProcess
    (text). Fails the test if the sanitizer reported anything."""
    require_binary()
    full_env = dict(os.environ)
    full_env["STRATQ_API_URL"] = api_url
    full_env.update(env or {})
    res = subprocess.run(
        [str(STRATQ_BIN), *[str(a) for a in args]],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd=cwd or REPO_ROOT,
    )
    found = sanitizer_findings(res.stderr)
    assert not found, f"sanitizer report from `stratq {' '.join(map(str, args))}`:\n{res.stderr}"
    return res


def describe_run(res):
    return f"`{' '.join(map(str, res.args))}` exited {res.returncode}\n--- stdout\n{res.stdout}\n--- stderr\n{res.stderr}"


def parse_json(res):
    """The CLI's stdout as one JSON document (--json), or the test fails
    showing the run."""
    try:
        return json.loads(res.stdout)
    except ValueError as e:
        raise AssertionError(f"stdout is not one JSON document ({e})\n{describe_run(res)}") from None


# --------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and rep.when in ("setup", "call"):
        s = getattr(item, "_stratq_stack", None)
        if s is not None:
            for proc in s.procs:
                rep.sections.append((f"stratq {proc.kind} pid {proc.pid} log tail", tail(proc.log(), 60)))


# --------------------------------------------------------------------------
# A Redis of a test's own, for outages and restarts
# --------------------------------------------------------------------------


class PrivateRedis:
    """A redis-server with AOF on, owned by one test: it can be stopped
    (gracefully, SIGSTOPped or killed) and started again on the same port
    and data directory.

    With a ``password`` it is configured as `stratq up` configures its own:
    a 0600 ``redis.conf`` (``self.conf``) holding ``requirepass``, and
    ``url`` carries the password."""

    def __init__(self, tmp_path, password=None):
        self.port = free_port()
        self.dir = tmp_path / "private-redis"
        self.dir.mkdir()
        self.password = password
        auth = f":{password}@" if password else ""
        self.url = f"redis://{auth}127.0.0.1:{self.port}"
        self.conf = None
        self.proc = None

    def _argv(self):
        if not self.password:
            return [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "yes", "--dir", str(self.dir)]
        if self.conf is None:
            self.conf = self.dir / "redis.conf"
            fd = os.open(self.conf, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(f"port {self.port}\nbind 127.0.0.1\nprotected-mode yes\n"
                        f"dir \"{self.dir}\"\nappendonly yes\nsave \"\"\ndaemonize no\n"
                        f"requirepass {self.password}\n")
        return [REDIS_SERVER, str(self.conf)]

    def start(self):
        self.proc = subprocess.Popen(self._argv(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = self.client()
        wait_for(lambda: _ping(client), START_TIMEOUT, f"the private redis-server on {self.port}")

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.send_signal(sig)
            self.proc.wait(timeout=STOP_TIMEOUT)

    def client(self):
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password,
                           decode_responses=True)


def _ping(client):
    try:
        return client.ping()
    except Exception:
        return False


@pytest.fixture
def private_redis(tmp_path):
    r = PrivateRedis(tmp_path)
    r.start()
    yield r
    r.stop()


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "alone: needs the machine's cores to itself (a CPU limit that only counts "
        "when the job gets more than one core); make integration runs these after the "
        "parallel run, one at a time")
