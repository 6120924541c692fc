"""A stratq stack for the chaos and soak scripts: its own redis-server (AOF
on, free loopback port, temporary directory), one API and N workers.

Everything here talks to stratq from the outside (HTTP, plain redis-py,
/proc); nothing imports stratq code. Every process is started by this module,
remembered by its pid and stopped by that pid (``Stack.close``); every wait
has a deadline.
"""

import json
import os
import random
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import redis

REPO_ROOT = Path(__file__).resolve().parents[2]
REDIS_SERVER = os.environ.get("STRATQ_TEST_REDIS_SERVER", "/usr/bin/redis-server")

PREFIX = "stratq:{python_execution_queue}"  # what every key but the queue list starts with
QUEUE = "python_execution_queue"
WORKERS_KEY = f"{PREFIX}:workers"

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
# The statuses with a listing index of their own (<base>:index:<status>,
# the `indexed` property of src/queue/status.h); every job is also in
# <base>:index:all.
INDEXED_STATUSES = (TERMINAL - {"succeeded"}) | {"scheduled"}

SANITIZER_MARKERS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "runtime error:",
    "WARNING: ThreadSanitizer",
)

START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0


class StackError(AssertionError):
    """A condition the stack waited for did not come (an AssertionError, so
    that pytest reports it as a failed check)."""


def wait_for(pred, timeout, what, interval=0.05):
    """Poll ``pred()`` until it is truthy (returns it) or raise StackError."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() >= deadline:
            desc = what() if callable(what) else what
            raise StackError(f"timed out after {timeout:g}s waiting for {desc}")
        time.sleep(interval)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bindable(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_port():
    """A free loopback port P whose Redis Cluster bus port P + 10000 is free
    too (so P <= 55535)."""
    for _ in range(1000):
        port = random.randint(20000, 45000)
        if _bindable(port) and _bindable(port + 10000):
            return port
    raise StackError("no free port pair for a Redis Cluster node")


def process_state(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()[0]


def pid_alive(pid):
    state = process_state(pid)
    return state is not None and state not in ("Z", "X")


def children(pid):
    """Live child pids of ``pid`` (from /proc/<pid>/task/<pid>/children)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split() if pid_alive(int(p))]
    except OSError:
        return []


def descendants(pid):
    found, todo = [], [pid]
    while todo:
        for c in children(todo.pop()):
            if c not in found:
                found.append(c)
                todo.append(c)
    return found


def job_pid(worker_pid, timeout=30):
    """The host pid of the process running ``worker_pid``'s current job,
    found from outside: a job may run in its own pid namespace, where
    ``os.getpid()`` is 1 and ``os.getppid()`` 0, so it cannot say.

    The worker's only child is its executor, and while a job runs the
    executor has exactly one child, the job's process (in warm mode the next
    spare is forked only after the job's reply). Call this while the job is
    known to run (it has printed, say); it waits up to ``timeout`` for that
    shape of the process tree."""

    def one():
        executors = children(worker_pid)
        if len(executors) != 1:
            return None
        jobs = children(executors[0])
        return jobs[0] if len(jobs) == 1 else None

    def shape():
        executors = children(worker_pid)
        return (f"the job of worker {worker_pid} (its executor(s) {executors}, their children "
                f"{[children(e) for e in executors]})")

    return wait_for(one, timeout, shape)


def pids_named(name):
    """Live pids whose name (``comm``, what ``prctl(PR_SET_NAME)`` sets) is
    ``name``: how a test finds from outside a process that a job started,
    whatever pid namespace it is in."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as f:
                comm = f.read().rstrip("\n")
        except OSError:
            continue
        if comm == name and pid_alive(int(entry)):
            found.append(int(entry))
    return found


def rss_kb(pid):
    """VmRSS of ``pid`` in KiB, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def sanitizer_findings(text):
    return [line for line in text.splitlines() if any(m in line for m in SANITIZER_MARKERS)]


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def attack_expectation(path):
    """What an attack of tests/sandbox must end as: its first line,
    ``# expect: STATUS`` or ``# expect: blocked``."""
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name} must start with '# expect: ...'"
    return first.split(": ", 1)[1].strip()


def attack_timeout(path, default=15):
    """The timeout_s an attack of tests/sandbox runs with: ``default``, or
    what a ``# timeout_s: N`` line says. The default is long, so that on a
    loaded machine an attack reaches the wall it tests (a memory or output
    cap, a refused call) before its timeout ends it; an attack that expects
    to be ended by its timeout names a short one (3 s)."""
    for line in path.read_text().splitlines()[:5]:
        if line.startswith("# timeout_s: "):
            return int(line.split(": ", 1)[1])
    return default


def check_attack_outcome(path, job):
    """The attack's job ended as its first line says (``blocked``: it
    succeeded and reports ``blocked``)."""
    want = attack_expectation(path)
    if want == "blocked":
        assert job["status"] == "succeeded", job
        assert job["result"]["blocked"] is True, job["result"]
    else:
        assert job["status"] == want, job


class Api:
    """A small HTTP/JSON client (urllib only). With a ``token`` it sends
    ``Authorization: Bearer <token>``."""

    def __init__(self, base_url, token=None):
        self.base_url = base_url.rstrip("/")
        self.token = token

    def request(self, method, path, body=None, timeout=30):
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
        try:
            with _OPENER.open(req, timeout=timeout) as resp:
                status, payload = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            status, payload = e.code, e.read()
        try:
            parsed = json.loads(payload) if payload else None
        except ValueError:
            parsed = payload.decode(errors="replace")
        return status, parsed

    def healthy(self):
        try:
            status, body = self.request("GET", "/healthz", timeout=2)
        except OSError:
            return False
        return status == 200 and isinstance(body, dict) and body.get("status") == "ok"

    def submit_batch(self, specs, timeout=60):
        """POST /v1/jobs/batch (≤ 1000 specs), retrying while the API answers
        503 (Redis away) until ``timeout``; returns the new ids in order."""
        assert 1 <= len(specs) <= 1000
        deadline = time.monotonic() + timeout
        while True:
            try:
                status, body = self.request("POST", "/v1/jobs/batch", {"jobs": specs})
            except OSError as e:
                status, body = None, repr(e)
            if status == 200:
                break
            if time.monotonic() >= deadline:
                raise StackError(f"POST /v1/jobs/batch -> {status} {body!r}")
            time.sleep(0.5)
        items = body.get("jobs") if isinstance(body, dict) else None
        if not isinstance(items, list) or len(items) != len(specs):
            raise StackError(f"POST /v1/jobs/batch: unexpected answer {body!r}")
        ids = []
        for item in items:
            if not isinstance(item, dict) or item.get("status") != "queued" or not item.get("id"):
                raise StackError(f"POST /v1/jobs/batch: item not queued: {item!r}")
            ids.append(item["id"])
        return ids


class Proc:
    def __init__(self, kind, popen, log_path):
        self.kind = kind
        self.popen = popen
        self.log_path = log_path
        self.started = time.monotonic()
        self.killed = False

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

    def tail(self, lines=30):
        return "\n".join(self.log().splitlines()[-lines:])


class Stack:
    """redis-server + ``stratq api`` + ``stratq worker``s under ``workdir``."""

    def __init__(self, binary, workdir, worker_env=None, api_env=None):
        self.binary = str(Path(binary).resolve())  # the daemons run in workdir
        self.workdir = Path(workdir)
        self.logdir = self.workdir / "logs"
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.redis_dir = self.workdir / "redis"
        self.redis_dir.mkdir(exist_ok=True)
        self.worker_env = dict(worker_env or {})
        self.api_env = dict(api_env or {})
        self.redis_port = None
        self.redis_proc = None
        self.redis_procs = []  # every redis-server started (restarts included)
        self.api = None
        self.client = None
        self.workers = []  # live (not killed) workers
        self.procs = []  # every stratq daemon started, in order
        self.strays = set()  # executors/jobs of killed workers, checked at close
        self._n = 0

    # -- redis -------------------------------------------------------------

    @property
    def redis_url(self):
        return f"redis://127.0.0.1:{self.redis_port}"

    def redis(self, **kw):
        return redis.Redis(host="127.0.0.1", port=self.redis_port, decode_responses=True, **kw)

    def start_redis(self):
        if self.redis_port is None:
            self.redis_port = free_port()
        log = open(self.logdir / "redis.log", "ab")
        try:
            proc = subprocess.Popen(
                [
                    REDIS_SERVER,
                    "--port", str(self.redis_port),
                    "--bind", "127.0.0.1",
                    "--dir", str(self.redis_dir),
                    "--appendonly", "yes",
                    "--save", "",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()
        self.redis_proc = proc
        self.redis_procs.append(proc)
        r = self.redis(socket_timeout=2)

        def ping():
            if proc.poll() is not None:
                raise StackError(f"redis-server exited with {proc.returncode}; see {self.logdir / 'redis.log'}")
            try:
                return r.ping()
            except redis.exceptions.RedisError:  # connection refused, LOADING
                return False

        try:
            wait_for(ping, START_TIMEOUT, f"redis-server on port {self.redis_port} to answer PING")
        finally:
            r.close()

    def stop_redis(self, timeout=STOP_TIMEOUT):
        proc = self.redis_proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise StackError(f"redis-server pid {proc.pid} did not exit within {timeout:g}s of SIGTERM")

    def restart_redis(self):
        """Graceful restart: SIGTERM, wait for the exit, start again on the
        same port and directory (the AOF brings the data back). Returns how
        long Redis was away (s)."""
        t0 = time.monotonic()
        self.stop_redis()
        self.start_redis()
        return time.monotonic() - t0

    # -- stratq daemons ----------------------------------------------------

    def _spawn(self, kind, args, env):
        self._n += 1
        log_path = self.logdir / f"{kind}-{self._n}.log"
        full_env = dict(os.environ)
        full_env.update(env)
        with open(log_path, "wb") as log:
            popen = subprocess.Popen(
                [self.binary, *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=full_env,
                cwd=self.workdir,
                start_new_session=True,
            )
        proc = Proc(kind, popen, log_path)
        self.procs.append(proc)
        return proc

    def start_api(self):
        port = free_port()
        proc = self._spawn("api", ["api", "--port", str(port), "--redis-url", self.redis_url], self.api_env)
        proc.port = port
        proc.url = f"http://127.0.0.1:{port}"
        client = Api(proc.url)

        def ready():
            if not proc.alive():
                raise StackError(f"stratq api exited with {proc.popen.returncode}:\n{proc.tail()}")
            return client.healthy()

        wait_for(ready, START_TIMEOUT, lambda: f"GET /healthz from the API:\n{proc.tail()}")
        self.api, self.client = proc, client
        return proc

    def worker_ids_by_pid(self, r):
        out = {}
        for wid in r.zrange(WORKERS_KEY, 0, -1):
            pid = r.hget(f"{PREFIX}:worker:{wid}", "pid")
            if pid and pid.isdigit():
                out[int(pid)] = wid
        return out

    def start_worker(self, wait=True):
        proc = self._spawn("worker", ["worker", "--redis-url", self.redis_url], self.worker_env)
        proc.id = None
        self.workers.append(proc)
        if wait:
            r = self.redis(socket_timeout=5)

            def registered():
                if not proc.alive():
                    raise StackError(f"stratq worker exited with {proc.popen.returncode}:\n{proc.tail()}")
                try:
                    return self.worker_ids_by_pid(r).get(proc.pid)
                except redis.exceptions.RedisError:
                    return None

            try:
                proc.id = wait_for(registered, START_TIMEOUT, lambda: f"worker pid {proc.pid} to register:\n{proc.tail()}")
            finally:
                r.close()
        return proc

    def executor_of(self, worker):
        """The pid of ``worker``'s executor (its child), or None between
        executors."""
        kids = children(worker.pid)
        return kids[0] if kids else None

    def kill_worker(self, worker):
        """SIGKILL the worker supervisor (its executor and job follow it by
        PDEATHSIG; they are remembered and checked at close)."""
        self.strays.update(descendants(worker.pid))
        worker.popen.send_signal(signal.SIGKILL)
        worker.popen.wait(timeout=STOP_TIMEOUT)
        worker.killed = True
        self.workers.remove(worker)

    def kill_executor(self, worker):
        """SIGKILL ``worker``'s executor; returns its pid, or None when the
        worker had none at that moment."""
        pid = self.executor_of(worker)
        if pid is None:
            return None
        self.strays.update(descendants(pid))
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return None
        return pid

    def strays_alive(self):
        """The remembered executors/jobs still alive (dead ones are
        forgotten, so a reused pid is not mistaken for one later)."""
        self.strays = {p for p in self.strays if pid_alive(p)}
        return sorted(self.strays)

    # -- teardown ----------------------------------------------------------

    def close(self):
        """Stop every process this stack started, by pid: workers (SIGTERM,
        drain), the API, redis-server; SIGKILL whatever outlives its
        deadline. Returns a list of problems (processes left behind)."""
        problems = []
        for proc in sorted(self.procs, key=lambda p: p.kind == "api"):
            if proc.popen.poll() is None:
                kids = descendants(proc.pid)
                proc.popen.send_signal(signal.SIGTERM)
                try:
                    proc.popen.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    problems.append(f"{proc.kind} pid {proc.pid} ignored SIGTERM for {STOP_TIMEOUT:g}s")
                    proc.popen.kill()
                    proc.popen.wait()
                self.strays.update(kids)
        try:
            wait_for(lambda: not self.strays_alive(), 10, "executors and jobs of stopped workers to exit")
        except StackError:
            left = self.strays_alive()
            problems.append(f"processes left behind by stopped or killed workers: {left}")
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for proc in self.redis_procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        return problems

    def sanitizer_reports(self):
        out = []
        for proc in self.procs:
            found = sanitizer_findings(proc.log())
            if found:
                out.append(f"{proc.kind} pid {proc.pid} ({proc.log_path}): {found[0]}")
        return out

    def log_lines(self, kind):
        """Parsed JSON log lines of every ``kind`` daemon."""
        out = []
        for proc in self.procs:
            if proc.kind != kind:
                continue
            for line in proc.log().splitlines():
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue
                if isinstance(obj, dict):
                    out.append(obj)
        return out
