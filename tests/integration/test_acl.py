"""stratq as Redis ACL users: the API as ``stratq-api`` and the workers as
``stratq-worker``, each with exactly the rules of docs/operations.md,
"Redis ACL users" (parsed from there, so that the doc and this test cannot
drift), on a redis-server of this module's own whose ``default`` user is
off.

The components authenticate with the user and password of their URL,
``redis://USER:PASSWORD@host:port`` (``AUTH USER PASSWORD``; both
percent-decoded). The whole life of jobs runs through them, including the
rare paths (a NOSCRIPT fallback to EVAL, the dead-letter list, retries
promoted from the schedule, the reaper, a drain that gives a job back,
the trimming of the indexes), and Redis' ``ACL LOG`` must stay empty: any
command, key or channel the rules lack is logged there as a denial.

Redis 7 checks the commands a script calls against the caller's ACL, and
the KEYS of EVALSHA for read and write access, so a denial inside a script
shows there too.
"""

import json
import re
import secrets
import signal
import subprocess
import urllib.parse

import pytest
import redis

from conftest import (
    REDIS_SERVER,
    REPO_ROOT,
    START_TIMEOUT,
    STOP_TIMEOUT,
    TERMINAL,
    Api,
    ApiProc,
    EventStream,
    Stack,
    WorkerProc,
    free_port,
    serve_stack,
    wait_for,
)

OPERATIONS_MD = REPO_ROOT / "docs" / "operations.md"
USERS = ("stratq-api", "stratq-worker")
KEDA = "stratq-keda"  # KEDA's Redis scaler: the queue's length
ADMIN = "stratq-test-admin"
PREFIX = "stratq:{python_execution_queue}"
QUEUE = "python_execution_queue"

# A silent worker is reaped after 3 heartbeats; the indexes are trimmed
# about once a heartbeat interval, down to 10 jobs each.
WORKER_ENV = {"STRATQ_HEARTBEAT_S": "1", "STRATQ_INDEX_SIZE": "10"}

QUICK = "def run(ctx):\n    return ctx.params.get('n', 7)\n"
BOOM = "def run(ctx):\n    raise RuntimeError('boom')\n"
LOGS_AND_RETURNS = "def run(ctx):\n    ctx.log('kept')\n    return ctx.params['n']\n"
SLEEP = ("import time\n\ndef run(ctx):\n    print('asleep', flush=True)\n"
         "    time.sleep(ctx.params.get('s', 60))\n    return {'attempt': ctx.attempt}\n")
# Prints, logs and reports progress, then stays running for a while, so
# that its live output (APPEND, RPUSH, HSET progress, EXPIRE, by the
# worker) is read while it runs (logs.lua, by the API).
CHATTY = ("import sys, time\n\ndef run(ctx):\n    print('started', flush=True)\n"
          "    print('to stderr', file=sys.stderr, flush=True)\n"
          "    ctx.log('half way', step=1)\n    ctx.progress(0.5, 'half')\n"
          "    time.sleep(3)\n    return ctx.params['n'] * 2\n")


# --------------------------------------------------------------------------
# The documented rules
# --------------------------------------------------------------------------


def documented_rules():
    """{user: [rule, ...]} of the `ACL SETUSER` lines in the code blocks of
    operations.md's section "Redis ACL users" (the password rule is
    `>PASSWORD` there): stratq-api, stratq-worker and stratq-keda; the
    line for `default` must turn it off."""
    text = OPERATIONS_MD.read_text()
    m = re.search(r"^## Redis ACL users\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert m, "docs/operations.md has no section '## Redis ACL users'"
    rules = {}
    for block in re.findall(r"^```[a-z]*\n(.*?)^```", m.group(1), re.M | re.S):
        for line in block.splitlines():
            words = line.split()
            if words[:2] == ["ACL", "SETUSER"]:
                assert words[2] not in rules, f"two ACL SETUSER lines for {words[2]}"
                rules[words[2]] = words[3:]
    assert rules.pop("default", None) == ["off"], "the doc must turn the default user off"
    assert set(rules) == {*USERS, KEDA}, f"ACL SETUSER lines in docs/operations.md: {sorted(rules)}"
    for user, words in rules.items():
        # From nothing (reset: no commands, keys or channels), enabled, with
        # the one password the test fills in, and nothing granted wholesale.
        assert words[0] == "reset" and "on" in words, (user, words)
        assert [w for w in words if w.startswith(">")] == [">PASSWORD"], (user, words)
        assert not {"+@all", "allcommands", "allkeys", "~*", "allchannels", "&*", "nopass"} & set(words), \
            (user, words)
        assert not [w for w in words if w.startswith("+@")], f"{user}: whole categories: {words}"
    for user in USERS:
        # What the replica wait and Sentinel will use (STRATQ_REDIS_MIN_REPLICAS).
        assert {"+wait", "+role"} <= set(rules[user]), (user, rules[user])
    return rules


def with_password(rules, password):
    return [f">{password}" if w == ">PASSWORD" else w for w in rules]


def for_queue(rules, prefix, queue):
    """The rules as the doc says to change them for STRATQ_PREFIX and
    STRATQ_QUEUE: every pattern's `stratq:{python_execution_queue}` and
    the queue list's name replaced."""
    out = []
    for w in rules:
        w = w.replace(f"stratq:{{{QUEUE}}}", f"{prefix}:{{{queue}}}")
        if w == f"~{QUEUE}":
            w = f"~{queue}"
        out.append(w)
    return out


# --------------------------------------------------------------------------
# A Redis with ACL users
# --------------------------------------------------------------------------


class AclRedis:
    """A redis-server whose `default` user is off; the test's own client is
    the all-powerful user ADMIN. With ``tls``, a directory of
    scripts/dev-certs.sh's certificates, it speaks TLS only and asks for
    client certificates (tests/integration/test_redis_tls.py)."""

    def __init__(self, tmp_path, tls=None):
        self.tls = tls
        self.port = free_port()
        self.dir = tmp_path
        self.admin_password = secrets.token_hex(16)
        self.proc = None
        self.log_path = tmp_path / "redis.log"
        # What Stack would give a daemon that is not handed a URL of its
        # own: a user that does not exist, so that such a daemon fails.
        self.scheme = "rediss" if tls else "redis"
        self.url = f"{self.scheme}://nobody:nothing@127.0.0.1:{self.port}"
        self.passwords = {}

    def _tls_args(self):
        if not self.tls:
            return ["--port", str(self.port)]
        return ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(self.tls / "redis.crt"),
                "--tls-key-file", str(self.tls / "redis.key"), "--tls-ca-cert-file", str(self.tls / "ca.crt")]

    def _ssl(self):
        if not self.tls:
            return {}
        return {"ssl": True, "ssl_ca_certs": str(self.tls / "ca.crt"),
                "ssl_certfile": str(self.tls / "client.crt"), "ssl_keyfile": str(self.tls / "client.key")}

    def start(self):
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [REDIS_SERVER, *self._tls_args(), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", str(self.dir)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        first = redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True, socket_timeout=5,
                            **self._ssl())

        def ping():
            assert self.proc.poll() is None, f"redis-server exited: {self.log_path.read_text()}"
            try:
                return first.ping()
            except redis.exceptions.ConnectionError:
                return False

        wait_for(ping, START_TIMEOUT, f"redis-server on port {self.port}")
        first.execute_command("ACL", "SETUSER", ADMIN, "reset", "on", f">{self.admin_password}",
                              "~*", "&*", "+@all")
        first.execute_command("ACL", "SETUSER", "default", "reset", "off")
        # Closed for good: a pooled connection would stay "default" in
        # CLIENT LIST, where the tests look for stratq's users only.
        first.connection_pool.disconnect()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def client(self, **kw):
        return redis.Redis(host="127.0.0.1", port=self.port, username=ADMIN,
                           password=self.admin_password, decode_responses=True, **self._ssl(), **kw)

    def user_client(self, user, password=None):
        return redis.Redis(host="127.0.0.1", port=self.port, username=user,
                           password=password or self.passwords[user], decode_responses=True, **self._ssl())

    def set_users(self, rules, passwords=None):
        """Creates (or resets) the two users with these rules and fresh
        passwords, or the given ones."""
        admin = self.client()
        try:
            for user in (*USERS, KEDA):
                self.passwords[user] = (passwords or {}).get(user) or secrets.token_hex(16)
                admin.execute_command("ACL", "SETUSER", user,
                                      *with_password(rules[user], self.passwords[user]))
        finally:
            admin.close()

    def user_url(self, user, password=None, db=None):
        password = self.passwords[user] if password is None else password
        q = lambda s: urllib.parse.quote(s, safe="")  # noqa: E731
        return f"{self.scheme}://{q(user)}:{q(password)}@127.0.0.1:{self.port}" + (f"/{db}" if db else "")

    def acl_log(self):
        admin = self.client()
        try:
            return admin.execute_command("ACL", "LOG")
        finally:
            admin.close()


@pytest.fixture(scope="module")
def acl_redis(tmp_path_factory):
    server = AclRedis(tmp_path_factory.mktemp("acl-redis"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


def acl_stack(server, tmp_path, request):
    """The server emptied, with the users made from the doc's rules, an
    empty ACL LOG and a Stack of the test's own, torn down after it."""
    admin = server.client()
    admin.flushall()
    admin.script_flush()
    admin.execute_command("ACL", "LOG", "RESET")
    admin.close()
    server.rules = documented_rules()
    server.set_users(server.rules)
    yield from serve_stack(request, AclStack(tmp_path, server))


@pytest.fixture
def acl(acl_redis, tmp_path, request):
    yield from acl_stack(acl_redis, tmp_path, request)


class AclStack(Stack):
    """Stack whose API runs as stratq-api and whose workers run as
    stratq-worker, each given its URL in the environment."""

    def __init__(self, tmp_path, server):
        super().__init__(tmp_path, server)
        self.server = server

    def start_api(self, env=None, args=(), token=None, password=None, db=None):
        env = {"STRATQ_REDIS_URL": self.server.user_url("stratq-api", password, db), **(env or {})}
        return super().start_api(env=env, args=args, token=token)

    def start_worker(self, env=None, args=(), user=None, binary=None, password=None, db=None):
        env = {"STRATQ_REDIS_URL": self.server.user_url("stratq-worker", password, db), **WORKER_ENV,
               **(env or {})}
        if not db:
            return super().start_worker(env=env, args=args, user=user, binary=binary)
        # Registered in that database, where Stack does not look.
        proc = self.spawn("worker", ["worker", *args], env, WorkerProc, user=user, binary=binary)
        admin = self.server.client(db=db)
        try:
            def registered():
                assert proc.alive(), f"stratq worker exited\n{proc.describe()}"
                return admin.zrange(f"{PREFIX}:workers", 0, -1)

            proc.id = wait_for(registered, START_TIMEOUT, lambda: f"the worker to register in db {db}\n"
                               f"{proc.describe()}")[0]
        finally:
            admin.close()
        return proc

    def assert_acl_log_empty(self):
        log = self.server.acl_log()
        assert not log, "Redis denied stratq a command, key or channel (ACL LOG):\n" + \
            "\n".join(json.dumps(entry, default=str) for entry in log)

    def clients_by_user(self):
        """{name: {users}} of the connections other than the test's own."""
        out = {}
        for c in self.r.client_list():
            if c.get("user") != ADMIN:
                out.setdefault(c.get("name", ""), set()).add(c.get("user"))
        return out


def terminal_for(*ids):
    return lambda events: all(any(e.get("id") == i and e["status"] in TERMINAL for e in events) for i in ids)


def spawn_api_and_read_readyz(stack, env):
    """Starts `stratq api` with env (not waiting for it to be healthy, as
    Stack.start_api does); returns it, its client and the first answer of
    its /readyz."""
    port = free_port()
    api_proc = stack.spawn("api", ["api", "--port", str(port)], env, ApiProc)
    client = Api(f"http://127.0.0.1:{port}")

    def answers():
        assert api_proc.alive(), f"stratq api exited\n{api_proc.describe()}"
        try:
            return client.get("/readyz", timeout=2)
        except OSError:
            return None

    return api_proc, client, wait_for(answers, START_TIMEOUT, lambda: f"/readyz to answer\n{api_proc.describe()}")


def ok(api, method, path, body=None, expect=200):
    status, answer = api.request(method, path, **({} if body is None else {"json_body": body}))
    assert status == expect, f"{method} {path} -> {status} {answer!r}"
    return answer


# --------------------------------------------------------------------------
# The tests
# --------------------------------------------------------------------------


def test_the_whole_job_life_runs_as_the_documented_users(acl):
    api_proc = acl.start_api()
    api = api_proc.client
    w1, w2 = acl.start_worker(), acl.start_worker()
    # Each component is connected as its own user, and nothing as default
    # (a connection is "default" only between its connect and its AUTH).
    wanted = {"stratq-api": {"stratq-api"}, "stratq-api-events": {"stratq-api"},
              "stratq-worker": {"stratq-worker"}, "stratq-worker-control": {"stratq-worker"}}
    wait_for(lambda: acl.clients_by_user() == wanted, START_TIMEOUT,
             lambda: f"the connections by name and user to be {wanted}: {acl.clients_by_user()}")
    users = acl.clients_by_user()
    assert {u for names in users.values() for u in names} == set(USERS), users
    assert ok(api, "GET", "/readyz") == {"ready": True, "redis": True, "events": True}
    events = EventStream(api_proc.port)
    try:
        # A job that prints, logs and reports progress: its live output is
        # read while it runs, then its result, by a long poll.
        chatty = api.submit({"code": CHATTY, "params": {"n": 21}})

        def live():
            logs = ok(api, "GET", f"/v1/jobs/{chatty}/logs")
            return logs if logs["status"] == "running" and "started\n" in logs["stdout"] \
                and "to stderr" in logs["stderr"] and logs["log"] else None

        logs = wait_for(live, 30, f"the live output of {chatty}")
        assert logs["log"][0]["msg"] == "half way" and not logs["done"], logs
        wait_for(lambda: api.job(chatty).get("progress", {}).get("message") == "half", 10,
                 lambda: f"the progress of {chatty}: {api.job(chatty)}")
        job = ok(api, "GET", f"/v1/jobs/{chatty}?wait=30")
        assert job["status"] == "succeeded" and job["result"] == 42, job
        assert ok(api, "GET", f"/v1/jobs/{chatty}/result")["result"] == 42
        final = ok(api, "GET", f"/v1/jobs/{chatty}/logs?stdout_offset=0&stderr_offset=0&log_offset=0")
        assert final["done"] and final["stdout"] == "started\n", final
        # Its worker published its live output's events itself (PUBLISH
        # under the worker's rules), heard before its end.
        events.until(lambda evs: any(e.get("id") == chatty and e["status"] == "succeeded" for e in evs))
        assert any(e.get("id") == chatty and e["output"]["stdout"] > 0 for e in events.outputs), \
            events.outputs

        # A client-chosen id, sent twice: one job (enqueue.lua's HSETNX and
        # HGET).
        status, body = api.post("/v1/jobs", {"code": QUICK, "id": "order-1"})
        assert status == 201, body
        status, body = api.post("/v1/jobs", {"code": QUICK, "id": "order-1"})
        assert status == 200 and body["id"] == "order-1", body
        assert api.wait_job("order-1")["status"] == "succeeded"

        # Cancel: two running jobs (one per worker, through its control
        # channel) and one still waiting in the queue.
        running = [api.submit({"code": SLEEP}) for _ in range(2)]
        for job_id in running:
            api.wait_printed(job_id, "asleep")
        waiting = api.submit({"code": QUICK})
        assert ok(api, "DELETE", f"/v1/jobs/{waiting}")["status"] == "cancelled"
        for job_id in running:
            assert ok(api, "DELETE", f"/v1/jobs/{job_id}", expect=202)["status"] == "cancelling"
        for job_id in running:
            assert api.wait_job(job_id)["status"] == "cancelled"
        assert api.job(waiting)["status"] == "cancelled"

        # A failed job, retried by hand; one retried by itself (scheduled,
        # promoted back to the queue) until it has no attempt left.
        failed = api.submit({"code": BOOM})
        assert api.wait_job(failed)["status"] == "failed"
        assert ok(api, "POST", f"/v1/jobs/{failed}/retry")["status"] == "queued"
        job = api.wait_status(failed, "failed")
        assert job["attempts"] == 2, job
        flaky = api.submit({"code": BOOM, "max_attempts": 2, "retry_backoff_s": 0})
        events.until(terminal_for(flaky))
        assert "scheduled" in events.statuses(flaky), events.statuses(flaky)
        flaky_job = api.job(flaky)
        assert flaky_job["attempts"] == 2 and flaky_job["status"] in ("failed", "dead"), flaky_job

        # An entry no worker can run goes to the dead-letter list.
        acl.r.lpush(QUEUE, "no-such-job")
        wait_for(lambda: acl.r.llen(f"{PREFIX}:deadletter") == 1, 30, "the dead-letter entry")

        # A recurring job: the workers tick it (tick.lua) into jobs; it is
        # listed, paused, resumed and deleted (schedule.lua, schedules.lua).
        sched = ok(api, "POST", "/v1/schedules",
                   {"every": "1s", "job": {"code": QUICK, "params": {"n": 3}}}, expect=201)["id"]
        wait_for(lambda: ok(api, "GET", f"/v1/schedules/{sched}")["last_status"] == "succeeded",
                 30, "a job of the schedule to succeed")
        assert [s["id"] for s in ok(api, "GET", "/v1/schedules")["schedules"]] == [sched]
        assert ok(api, "POST", f"/v1/schedules/{sched}/pause")["paused"] is True
        assert ok(api, "POST", f"/v1/schedules/{sched}/resume")["paused"] is False
        assert ok(api, "DELETE", f"/v1/schedules/{sched}")["deleted"] is True

        # A batch past the index size: every job runs, and the workers trim
        # the listing index back to STRATQ_INDEX_SIZE.
        batch = ok(api, "POST", "/v1/jobs/batch", {"jobs": [{"code": QUICK, "params": {"n": i}}
                                                             for i in range(12)]})
        batch_ids = [j["id"] for j in batch["jobs"]]
        for i, job_id in enumerate(batch_ids):
            job = api.wait_job(job_id)
            assert job["status"] == "succeeded" and job["result"] == i, job
        wait_for(lambda: acl.r.zcard(f"{PREFIX}:index:all") <= 10, 30,
                 lambda: f"index:all trimmed to 10 (has {acl.r.zcard(f'{PREFIX}:index:all')})")

        # Redis loses its scripts: the API and the workers fall back on EVAL.
        acl.r.script_flush()
        after_flush = api.submit({"code": QUICK, "params": {"n": 5}})
        job = api.wait_job(after_flush)
        assert job["status"] == "succeeded" and job["result"] == 5, job

        # The reads of the dashboard, the CLI and the monitor.
        assert ok(api, "GET", "/v1/queue")["pending"] == 0
        assert {w["id"] for w in ok(api, "GET", "/v1/workers")["workers"]} == {w1.id, w2.id}
        statuses = ok(api, "GET", "/v1/statuses")["statuses"]
        assert ok(api, "GET", "/v1/jobs?limit=500")["jobs"]
        for s in statuses:
            name = s["name"] if isinstance(s, dict) else s
            ok(api, "GET", f"/v1/jobs?status={name}&limit=100")
        # Paging through a listing (list.lua from a cursor).
        first = ok(api, "GET", "/v1/jobs?limit=2")
        assert len(first["jobs"]) == 2 and first["next_cursor"], first
        cursor = urllib.parse.quote(first["next_cursor"], safe="")
        second = ok(api, "GET", f"/v1/jobs?limit=2&cursor={cursor}")
        assert second["jobs"] and not {j["id"] for j in first["jobs"]} & {j["id"] for j in second["jobs"]}
        listed = {j["id"] for j in ok(api, "GET", "/v1/jobs?status=cancelled&limit=100")["jobs"]}
        assert listed == {waiting, *running}, listed
        status, metrics = api.get("/metrics")
        assert status == 200 and "stratq_jobs_submitted_total" in metrics, metrics
        status, page = api.get("/")
        assert status == 200

        # Every event reached the stream.
        events.until(terminal_for(chatty, after_flush, *running, *batch_ids))
        assert events.statuses(chatty) == ["queued", "running", "succeeded"], events.events
        assert events.statuses(running[0])[-2:] == ["cancelling", "cancelled"], events.events
    finally:
        events.close()
    # Stopping workers deregister (forget.lua).
    for w in (w1, w2):
        assert acl.stop(w) == 0, w.describe()
    assert acl.r.zcard(f"{PREFIX}:workers") == 0
    acl.assert_acl_log_empty()


def test_a_lost_worker_is_reaped_and_a_drained_job_given_back(acl):
    api = acl.start_api().client
    a = acl.start_worker()
    job_id = api.submit({"code": SLEEP, "params": {"s": 2}})
    assert api.wait_status(job_id, "running")["worker"] == a.id
    acl.stop(a, signal.SIGKILL)
    # The reaper (SET NX of its lock, reap.lua, LRANGE, lost.lua,
    # forget.lua) on the next worker gives the job back.
    b = acl.start_worker(env={"STRATQ_DRAIN_TIMEOUT_S": "0"})
    job = api.wait_job(job_id)
    assert job["status"] == "succeeded" and job["worker"] == b.id and job["attempts"] == 2, job
    assert acl.r.zscore(f"{PREFIX}:workers", a.id) is None
    # The worker's control channel drops while its job runs: it polls the
    # job's hash for a cancel (HEXISTS) until it is subscribed again.
    cancelled = api.submit({"code": SLEEP})
    api.wait_printed(cancelled, "asleep")
    assert acl.r.client_kill_filter(_type="pubsub", user="stratq-worker") >= 1
    assert ok(api, "DELETE", f"/v1/jobs/{cancelled}", expect=202)["status"] == "cancelling"
    assert api.wait_job(cancelled)["status"] == "cancelled"
    # A worker stopped in the middle of a job gives it back to the queue
    # (lost.lua as it deregisters).
    long_job = api.submit({"code": SLEEP})
    api.wait_printed(long_job, "asleep")
    assert acl.stop(b) == 0, b.describe()
    assert api.job(long_job)["status"] == "queued"
    assert ok(api, "DELETE", f"/v1/jobs/{long_job}")["status"] == "cancelled"
    acl.assert_acl_log_empty()


def test_the_rules_follow_the_prefix_and_the_queue(acl):
    """The doc's rules with `stratq` and `python_execution_queue` replaced
    serve a deployment with its own STRATQ_PREFIX and STRATQ_QUEUE."""
    prefix, queue = "acme", "backtests"
    rules = {u: for_queue(r, prefix, queue) for u, r in acl.server.rules.items()}
    assert rules != acl.server.rules
    acl.server.set_users(rules)
    env = {"STRATQ_PREFIX": prefix, "STRATQ_QUEUE": queue}
    api_proc = acl.start_api(env=env)
    api = api_proc.client
    # Records kept for ever (STRATQ_RESULT_TTL=0): complete.lua PERSISTs
    # the log lines.
    worker = acl.spawn("worker", ["worker"], {
        "STRATQ_REDIS_URL": acl.server.user_url("stratq-worker"), **WORKER_ENV, **env,
        "STRATQ_RESULT_TTL": "0"})
    wait_for(lambda: acl.r.zcard(f"{prefix}:{{{queue}}}:workers") == 1, START_TIMEOUT,
             lambda: f"the worker to register\n{worker.describe()}")
    events = EventStream(api_proc.port)
    try:
        job_id = api.submit({"code": LOGS_AND_RETURNS, "params": {"n": 3}})
        events.until(terminal_for(job_id))
        assert events.statuses(job_id) == ["queued", "running", "succeeded"]
    finally:
        events.close()
    assert api.job(job_id)["result"] == 3
    assert acl.r.exists(f"{prefix}:{{{queue}}}:job:{job_id}")
    assert acl.r.ttl(f"{prefix}:{{{queue}}}:job:{job_id}:log") == -1  # kept, like the record
    assert ok(api, "GET", "/v1/workers")["workers"]
    acl.assert_acl_log_empty()


def test_the_users_get_nothing_beyond_their_rules(acl):
    """The rules are no wider than stratq needs: what neither component
    does is refused to both."""
    for user in (*USERS, KEDA):
        c = acl.server.user_client(user)
        try:
            for command in (("FLUSHALL",), ("CONFIG", "GET", "*"), ("KEYS", "*"), ("GET", "other"),
                            ("SET", "other", "1"), ("SCRIPT", "FLUSH"), ("PUBLISH", "other", "x"),
                            ("SUBSCRIBE", "other"), ("ACL", "LIST"), ("MONITOR",)):
                with pytest.raises(redis.exceptions.ResponseError, match="NOPERM|permission"):
                    c.execute_command(*command)
        finally:
            c.close()
    api = acl.server.user_client("stratq-api")
    worker = acl.server.user_client("stratq-worker")
    try:
        # Taking jobs, the reaper's lock and the dead-letter list are the
        # workers' alone.
        for command in (("BLMOVE", QUEUE, f"{PREFIX}:processing:x", "RIGHT", "LEFT", "0.01"),
                        ("SET", f"{PREFIX}:reaper:lock", "x", "NX", "PX", "10"),
                        ("LLEN", f"{PREFIX}:deadletter")):
            with pytest.raises(redis.exceptions.ResponseError, match="NOPERM|permission"):
                api.execute_command(*command)
            worker.execute_command(*command)
        # Reading a whole job record is the API's.
        with pytest.raises(redis.exceptions.ResponseError, match="NOPERM|permission"):
            worker.hgetall(f"{PREFIX}:job:x")
        assert api.hgetall(f"{PREFIX}:job:x") == {}
    finally:
        api.close()
        worker.close()
    # KEDA reads the queue's length, and nothing else.
    keda = acl.server.user_client(KEDA)
    try:
        acl.r.lpush(QUEUE, "a", "b")
        assert keda.llen(QUEUE) == 2
        for command in (("LRANGE", QUEUE, "0", "-1"), ("LPOP", QUEUE), ("HGETALL", f"{PREFIX}:job:x"),
                        ("LLEN", f"{PREFIX}:deadletter"), ("EVAL", "return 1", "0")):
            with pytest.raises(redis.exceptions.ResponseError, match="NOPERM|permission"):
                keda.execute_command(*command)
    finally:
        keda.close()
    assert acl.server.acl_log(), "the refusals above are in ACL LOG"


def test_user_and_password_are_percent_decoded_and_the_database_selected(acl):
    """Passwords holding URL delimiters, percent-encoded in the URLs, and a
    database other than 0 (SELECT as the users)."""
    passwords = {"stratq-api": "a@b:c/d%e?f#g h", "stratq-worker": "p%40ss:w@rd/+"}
    acl.server.set_users(acl.server.rules, passwords)
    assert "%40" in acl.server.user_url("stratq-api") and "%25" in acl.server.user_url("stratq-worker")
    api = acl.start_api(db=3).client
    worker = acl.start_worker(db=3)
    job = api.wait_job(api.submit({"code": QUICK}))
    assert job["status"] == "succeeded" and job["worker"] == worker.id, job
    assert acl.r.dbsize() == 0 and acl.server.client(db=3).exists(f"{PREFIX}:job:{job['id']}")
    acl.assert_acl_log_empty()


def test_a_wrong_password_is_named_and_keeps_the_api_unready(acl):
    worker = acl.spawn("worker", ["worker"], {
        "STRATQ_REDIS_URL": acl.server.user_url("stratq-worker", password="wrong"), **WORKER_ENV})
    # The worker says why it cannot connect, and goes on trying (or stops).
    wait_for(lambda: "WRONGPASS" in worker.log(), 10,
             lambda: f"WRONGPASS in the worker's log\n{worker.describe()}")
    assert acl.r.zcard(f"{PREFIX}:workers") == 0
    api_proc, client, (status, body) = spawn_api_and_read_readyz(
        acl, {"STRATQ_REDIS_URL": acl.server.user_url("stratq-api", password="wrong")})
    assert status == 503 and body["redis"] is False, body
    wait_for(lambda: "WRONGPASS" in api_proc.log(), 10,
             lambda: f"WRONGPASS in the API's log\n{api_proc.describe()}")
    # Still unready a moment later: it does not pass as connected.
    status, body = client.get("/readyz", timeout=2)
    assert status == 503, body
    assert client.post("/v1/jobs", {"code": QUICK})[0] == 503
    # The fix is the password: the same user with the right one connects.
    ready_api = acl.start_api().client
    assert ok(ready_api, "GET", "/readyz")["ready"] is True
