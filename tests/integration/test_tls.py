"""stratq over TLS to Redis (issue 17): ``rediss://`` with the CA, a client
certificate, SNI and TLS_INSECURE (STRATQ_REDIS_CACERT, _CERT, _KEY, _SNI,
_TLS_INSECURE), against redis-servers that listen with TLS only
(tlsredis.py: a test PKI made with the openssl CLI).

Every way the connection can be wrong is told in one message within
seconds, never a hang: by ``stratq worker --check`` (a line ``redis:
error: <message>``, exit 3), by a running API (``/readyz`` 503 with
``redis_error``, the same message) and in the daemons' JSON logs.

The first tests check the harness itself (redis-cli and Python's ssl
against each server), so that a failure below them is stratq's.
"""

import os
import socket
import subprocess
import time
from urllib.parse import quote

import pytest

from conftest import (
    PREFIX,
    START_TIMEOUT,
    STRATQ_BIN,
    TERMINAL,
    Api,
    ApiProc,
    Stack,
    free_port,
    job_pid,
    pid_alive,
    require_binary,
    sanitizer_findings,
    wait_for,
)
from test_events import read_sse_until
from tlsredis import OPENSSL, REDIS_CLI, Certs, TlsRedis, handshake_error

pytestmark = pytest.mark.skipif(not (os.access(OPENSSL, os.X_OK) and os.access(REDIS_CLI, os.X_OK)),
                                reason=f"needs {OPENSSL} and {REDIS_CLI}")

# How long a wrong setting may take to be told: "within seconds".
ERROR_DEADLINE = 5.0

PASSWORD = "tls-pass"
# An ACL user whose password needs %-escapes in a URL.
USER, USER_PASSWORD = "alice", "p@ss:w/rd%"

PRINT_AND_RETURN = ("import sys\n\ndef run(ctx):\n    print('over tls', ctx.params['n'], flush=True)\n"
                    "    print('to stderr', file=sys.stderr, flush=True)\n    return {'n': ctx.params['n']}\n")
SLEEPER = "import time\n\ndef run(ctx):\n    print('started', flush=True)\n    time.sleep(60)\n"
ENVIRON = "import os\n\ndef run(ctx):\n    return sorted(os.environ)\n"


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    return Certs(tmp_path_factory.mktemp("pki")).make()


class Servers:
    """The module's TLS redis-servers, each started on first use:

    - ``main``: the CA's localhost/127.0.0.1 certificate, tls-auth-clients yes;
    - ``other_ca``, ``self_signed``, ``expired``, ``wrong_host``: one bad
      server certificate each (tls-auth-clients no, so that it is the only
      fault);
    - ``password``: requirepass and an ACL user (tls-auth-clients no)."""

    KINDS = {
        "main": dict(server="server", auth_clients=True),
        "other_ca": dict(server="other_ca_server", auth_clients=False),
        "self_signed": dict(server="self_signed", auth_clients=False),
        "expired": dict(server="expired", auth_clients=False),
        "wrong_host": dict(server="wrong_host", auth_clients=False),
        "password": dict(server="server", auth_clients=False, password=PASSWORD,
                         users={USER: USER_PASSWORD}),
    }

    def __init__(self, workdir, certs):
        self.workdir = workdir
        self.certs = certs
        self.started = {}

    def __getitem__(self, kind):
        if kind not in self.started:
            spec = dict(self.KINDS[kind])
            spec["server"] = getattr(self.certs, spec["server"])
            self.started[kind] = TlsRedis(self.workdir / kind, self.certs, **spec).start()
        return self.started[kind]

    def stop(self):
        for server in self.started.values():
            server.stop()


@pytest.fixture(scope="module")
def servers(tmp_path_factory, certs):
    s = Servers(tmp_path_factory.mktemp("tls-redis"), certs)
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def main_server(servers):
    """The main TLS server, emptied (FLUSHALL over TLS, verified, with the
    client certificate)."""
    server = servers["main"]
    client = server.client()
    client.flushall()
    client.close()
    return server


class TlsStack(Stack):
    """A Stack whose daemons reach ``server`` over TLS: its rediss:// URL
    (in the environment when it has a password) and ``env`` (STRATQ_REDIS_CACERT
    and the rest); the test's own client is redis-py over TLS."""

    def __init__(self, tmp_path, server, env):
        super().__init__(tmp_path, server)
        self.env = env

    def start_api(self, env=None, **kw):
        return super().start_api(env={**self.env, **(env or {})}, **kw)

    def start_worker(self, env=None, **kw):
        return super().start_worker(env={**self.env, **(env or {})}, **kw)


@pytest.fixture
def tls_stack(tmp_path, request):
    """tls_stack(server, env=None, url=None) -> a TlsStack (env: the
    server's own STRATQ_REDIS_* by default; url: instead of its URL)."""
    made = []

    def make(server, env=None, url=None):
        s = TlsStack(tmp_path, server, server.env() if env is None else env)
        if url is not None:
            s.redis_url = url
        request.node._stratq_stack = s
        made.append(s)
        return s

    yield make
    problems = [p for s in made for p in s.teardown()]
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


def clean_env(env):
    """os.environ without any STRATQ_REDIS_* of its own, plus ``env``."""
    out = {k: v for k, v in os.environ.items() if not k.startswith("STRATQ_REDIS_")}
    out.update(env)
    return out


def worker_check(env, timeout=ERROR_DEADLINE):
    """``stratq worker --check`` with these STRATQ_REDIS_* settings: (exit
    code, its ``redis:`` line or None, all it printed). A run longer than
    ``timeout`` fails the test: a wrong setting must not hang it."""
    require_binary()
    t0 = time.monotonic()
    try:
        res = subprocess.run([str(STRATQ_BIN), "worker", "--check"], stdin=subprocess.DEVNULL,
                             capture_output=True, text=True, timeout=timeout, env=clean_env(env))
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"`stratq worker --check` with {env} still ran after {timeout:g}s "
                             f"(it must not hang); printed: {e.stdout!r} {e.stderr!r}") from None
    out = f"exit {res.returncode} after {time.monotonic() - t0:.1f}s\n--- stdout\n{res.stdout}\n--- stderr\n{res.stderr}"
    found = sanitizer_findings(res.stderr)
    assert not found, f"sanitizer report from `stratq worker --check`:\n{out}"
    lines = [x for x in (res.stdout + "\n" + res.stderr).splitlines() if x.startswith("redis:")]
    assert len(lines) <= 1, f"more than one redis: line:\n{out}"
    return res.returncode, (lines[0] if lines else None), out


def check_ok(env):
    rc, line, out = worker_check(env)
    assert line is not None and line.startswith("redis: ok"), out
    assert rc == 0, out


def logged(proc, text, levels=("warn", "error")):
    """The JSON log lines of ``proc`` at one of ``levels`` that hold ``text``
    in one of their string fields."""
    return [x for x in proc.log_lines_json() if x.get("level") in levels
            and any(isinstance(v, str) and text in v for v in x.values())]


def readyz(api):
    try:
        return api.client.get("/readyz", timeout=2)
    except OSError:
        return None, None


# --------------------------------------------------------------------------
# The harness itself (needs no stratq)
# --------------------------------------------------------------------------


def test_harness_main_server_answers_redis_cli_with_the_client_certificate(main_server):
    res = main_server.cli("PING")
    assert res.returncode == 0 and res.stdout.strip() == "PONG", (res.stdout, res.stderr)
    # tls-auth-clients yes: without a client certificate the server hangs up.
    res = main_server.cli("PING", client_cert=False)
    assert res.stdout.strip() != "PONG", (res.stdout, res.stderr)
    # TLS only: nothing listens in plaintext.
    assert main_server.port is None


@pytest.mark.parametrize("kind, error", [
    ("main", None),
    ("other_ca", "certificate verify failed"),
    ("self_signed", "certificate verify failed"),
    ("expired", "certificate has expired"),
    ("wrong_host", "match"),  # Python says "Hostname mismatch" or "doesn't match"
])
def test_harness_server_certificates_fail_verification_as_intended(servers, certs, kind, error):
    server = servers[kind]
    client = certs.client if server.auth_clients else None
    got = handshake_error(server.tls_port, certs.ca.cert, "localhost", client)
    if error is None:
        assert got is None, got
        assert handshake_error(server.tls_port, certs.ca.cert, "127.0.0.1", client) is None
    else:
        assert got is not None and error in got, got


def test_harness_wrong_host_certificate_is_good_for_its_own_name(servers, certs):
    assert handshake_error(servers["wrong_host"].tls_port, certs.ca.cert, "wrong.example") is None


def test_harness_password_server(servers):
    server = servers["password"]
    assert server.cli("PING").stdout.strip() == "PONG"
    res = server.cli("--user", USER, "--pass", USER_PASSWORD, "--no-auth-warning", "ACL", "WHOAMI")
    assert res.stdout.strip() == USER, (res.stdout, res.stderr)


# --------------------------------------------------------------------------
# stratq over TLS
# --------------------------------------------------------------------------


def test_worker_check_says_ok_over_tls_with_a_client_certificate(main_server):
    check_ok({"STRATQ_REDIS_URL": main_server.url, **main_server.env()})


def test_job_life_over_tls_with_a_client_certificate(main_server, tls_stack):
    """Submit, run, result, logs, the events stream and a cancel, with the
    API and a worker on a Redis that takes TLS with a client certificate
    only."""
    s = tls_stack(main_server)
    api_proc = s.start_api()
    api = api_proc.client
    worker = s.start_worker()
    assert api.get("/readyz")[0] == 200

    sock = socket.create_connection(("127.0.0.1", api_proc.port))
    try:
        sock.sendall(b"GET /v1/events HTTP/1.1\r\nHost: x\r\n\r\n")
        head = sock.recv(4096)
        assert b"200" in head.split(b"\r\n")[0] and b"text/event-stream" in head, head
        job_id = api.submit({"code": PRINT_AND_RETURN, "params": {"n": 17}})
        events = read_sse_until(sock, lambda e: e.get("id") == job_id and e["status"] in TERMINAL, 30)
        assert [e["status"] for e in events if e.get("id") == job_id] == ["queued", "running", "succeeded"], events
    finally:
        sock.close()

    job = api.wait_job(job_id)
    assert job["status"] == "succeeded" and job["result"] == {"n": 17}, job
    status, body = api.get(f"/v1/jobs/{job_id}/result")
    assert status == 200 and body["result"] == {"n": 17}, body
    status, body = api.get(f"/v1/jobs/{job_id}/logs")
    assert status == 200 and body["done"] is True, body
    assert body["stdout"] == "over tls 17\n" and body["stderr"] == "to stderr\n", body
    # It is this server's record (the only one it could be: TLS only).
    assert s.r.hget(f"{PREFIX}:job:{job_id}", "status") == "succeeded"

    # A running job cancelled: the worker's control channel works over TLS.
    job_id = api.submit({"code": SLEEPER})
    api.wait_printed(job_id, "started")
    pid = job_pid(worker.pid)
    status, body = api.request("DELETE", f"/v1/jobs/{job_id}")
    assert status == 202 and body == {"id": job_id, "status": "cancelling"}, body
    job = api.wait_job(job_id, timeout=10)
    assert job["status"] == "cancelled", job
    wait_for(lambda: not pid_alive(pid), 5, f"the cancelled job's process {pid} to be gone")

    # Jobs do not see the TLS settings (the client key's path among them).
    job = api.wait_job(api.submit({"code": ENVIRON}))
    assert job["status"] == "succeeded", job
    assert not [k for k in job["result"] if k.startswith("STRATQ_REDIS")], job["result"]
    for proc in (api_proc, worker):
        assert not logged(proc, "TLS_INSECURE"), proc.describe()


@pytest.mark.parametrize("server_kind, sni", [
    # The brief's case: the host is an IP, the name checked is localhost.
    ("main", "localhost"),
    # The certificate names only wrong.example: without the SNI setting
    # this is a hostname mismatch (test_errors_are_told_within_seconds).
    ("wrong_host", "wrong.example"),
])
def test_sni_names_the_server_instead_of_the_host(servers, tls_stack, server_kind, sni):
    server = servers[server_kind]
    env = {**server.env(), "STRATQ_REDIS_SNI": sni}
    assert server.url.startswith("rediss://127.0.0.1:")
    check_ok({"STRATQ_REDIS_URL": server.url, **env})
    s = tls_stack(server, env)
    s.r.flushall()
    api = s.start_api().client
    s.start_worker()
    job = api.wait_job(api.submit({"code": PRINT_AND_RETURN, "params": {"n": 1}}))
    assert job["status"] == "succeeded", job


def test_tls_insecure_connects_to_an_unknown_ca_and_says_so_loudly(servers, tls_stack):
    server = servers["other_ca"]
    env = {**server.env(), "STRATQ_REDIS_TLS_INSECURE": "1"}
    check_ok({"STRATQ_REDIS_URL": server.url, **env})
    s = tls_stack(server, env)
    s.r.flushall()
    api_proc = s.start_api()
    worker = s.start_worker()
    job = api_proc.client.wait_job(api_proc.client.submit({"code": PRINT_AND_RETURN, "params": {"n": 2}}))
    assert job["status"] == "succeeded", job
    for proc in (api_proc, worker):
        assert logged(proc, "TLS_INSECURE"), f"no warning naming TLS_INSECURE in\n{proc.describe()}"


@pytest.mark.parametrize("user, password", [("", PASSWORD), (USER, USER_PASSWORD)],
                         ids=["default-user", "acl-user"])
def test_password_in_the_url_over_tls(servers, tls_stack, user, password):
    server = servers["password"]
    port = server.tls_port
    url = f"rediss://{quote(user, safe='')}:{quote(password, safe='')}@127.0.0.1:{port}"
    env = server.env(client_cert=False)
    check_ok({"STRATQ_REDIS_URL": url, **env})
    rc, line, out = worker_check({"STRATQ_REDIS_URL": f"rediss://{user}:not-{PASSWORD}@127.0.0.1:{port}", **env})
    assert rc == 3 and line and line.startswith("redis: error:") and "WRONGPASS" in line, out

    s = tls_stack(server, env, url=url)
    s.r.flushall()
    api_proc = s.start_api()
    s.start_worker()
    job = api_proc.client.wait_job(api_proc.client.submit({"code": PRINT_AND_RETURN, "params": {"n": 3}}))
    assert job["status"] == "succeeded", job
    for proc in s.procs:
        assert password not in proc.log() and quote(password, safe="") not in proc.log(), proc.describe()


# --------------------------------------------------------------------------
# Each wrong setting: one message, within seconds
# --------------------------------------------------------------------------

# case: (server kind, or "plaintext" for the suite's plaintext redis-server;
#        the URL; whether stratq presents the client certificate; what the
#        message must hold). The wrong host is a name: for an IP host
#        OpenSSL's own words are "IP address mismatch".
ERROR_CASES = {
    "wrong-ca": ("other_ca", "rediss://127.0.0.1:{port}", True, "certificate verify failed"),
    "self-signed": ("self_signed", "rediss://127.0.0.1:{port}", True, "certificate verify failed"),
    "expired": ("expired", "rediss://127.0.0.1:{port}", True, "certificate has expired"),
    "wrong-host": ("wrong_host", "rediss://localhost:{port}", True, "hostname mismatch"),
    "plaintext-url-on-a-tls-port": ("main", "redis://127.0.0.1:{port}", True, "rediss://"),
    "tls-url-on-a-plaintext-port": ("plaintext", "rediss://127.0.0.1:{port}", True, "not a TLS port"),
    "no-client-certificate": ("main", "rediss://127.0.0.1:{port}", False, "client certificate"),
    "wrong-password": ("password", f"rediss://:not-{PASSWORD}@127.0.0.1:{{port}}", False, "WRONGPASS"),
}


@pytest.fixture(params=sorted(ERROR_CASES))
def wrong_setting(request, servers, redis_server, certs):
    """(STRATQ_REDIS_* settings that cannot work, what the message must hold)."""
    kind, url, client_cert, text = ERROR_CASES[request.param]
    if kind == "plaintext":
        port, env = redis_server.port, {"STRATQ_REDIS_CACERT": str(certs.ca.cert)}
        if client_cert:
            env.update(STRATQ_REDIS_CERT=str(certs.client.cert), STRATQ_REDIS_KEY=str(certs.client.key))
    else:
        port, env = servers[kind].tls_port, servers[kind].env(client_cert)
    return {"STRATQ_REDIS_URL": url.format(port=port), **env}, text


def test_errors_are_told_within_seconds(wrong_setting, stack):
    env, text = wrong_setting
    rc, line, out = worker_check(env)
    assert line is not None and line.startswith("redis: error: "), out
    assert text in line, f"{text!r} not in the message:\n{out}"
    assert rc == 3, out
    message = line[len("redis: error: "):]

    # A running API: /readyz is 503 and says why, as --check did.
    port = free_port()
    api = stack.spawn("api", ["api", "--port", str(port)], env, ApiProc)
    api.client = Api(f"http://127.0.0.1:{port}")

    def answers():
        assert api.alive(), f"stratq api exited with {api.popen.returncode}\n{api.describe()}"
        return readyz(api)[0] is not None

    wait_for(answers, START_TIMEOUT, lambda: f"the API to answer HTTP\n{api.describe()}")
    last = {}

    def told():
        last["readyz"] = readyz(api)
        status, body = last["readyz"]
        return status == 503 and isinstance(body, dict) and text in str(body.get("redis_error"))

    wait_for(told, ERROR_DEADLINE, lambda: f"/readyz -> 503 with a redis_error holding {text!r}; "
             f"last: {last.get('readyz')}\n{api.describe()}")
    body = last["readyz"][1]
    assert body["redis_error"] == message, (body, line)
    assert api.alive(), api.describe()  # it goes on trying: Redis may be fixed

    # A running worker says it in its log, within seconds too.
    worker = stack.spawn("worker", ["worker"], env)
    wait_for(lambda: logged(worker, text), ERROR_DEADLINE,
             lambda: f"a warn/error log line holding {text!r} from\n{worker.describe()}")
    assert logged(api, text), f"no warn/error log line holding {text!r} in\n{api.describe()}"
