"""stratq over a Redis Unix socket (``unix:/path``) and over an IPv6
literal (``redis://[::1]:port``): the API and a worker connect, a job runs, is cancelled while it runs, and the events reach the
API's subscription. The worker's connection once failed on every command
there (hiredis' TCP keepalive on a Unix socket); stratq's own transport
(src/queue/wire.c) sets TCP options on TCP sockets only."""

import socket
import subprocess

import pytest
import redis

from conftest import REDIS_SERVER, STOP_TIMEOUT, Stack, free_port, wait_for

QUICK = "def run(ctx):\n    return {'n': ctx.params['n'] * 2}\n"
SLEEPER = "import time\n\ndef run(ctx):\n    print('started', flush=True)\n    time.sleep(60)\n"


class UnixRedis:
    """A redis-server listening on a Unix socket only (--port 0)."""

    def __init__(self, workdir):
        self.path = workdir / "redis.sock"
        self.log_path = workdir / "redis.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [REDIS_SERVER, "--port", "0", "--unixsocket", str(self.path),
                 "--unixsocketperm", "700", "--save", "", "--appendonly", "no",
                 "--dir", str(workdir)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        self.url = f"unix:{self.path}"

    def client(self, **kw):
        return redis.Redis(unix_socket_path=str(self.path), decode_responses=True, **kw)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class V6Redis(UnixRedis):
    """A redis-server on the IPv6 loopback only, reached as redis://[::1]:port."""

    def __init__(self, workdir):
        self.port = free_port()
        self.log_path = workdir / "redis.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [REDIS_SERVER, "--port", str(self.port), "--bind", "::1", "--save", "",
                 "--appendonly", "no", "--dir", str(workdir)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        self.path = f"[::1]:{self.port}"
        self.url = f"redis://[::1]:{self.port}"

    def client(self, **kw):
        return redis.Redis(host="::1", port=self.port, decode_responses=True, **kw)


def _has_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.fixture(params=[UnixRedis, V6Redis], ids=["unix", "ipv6"])
def unix_stack(tmp_path, request):
    if request.param is V6Redis and not _has_ipv6_loopback():
        # Docker gives containers no ::1 unless IPv6 is enabled.
        pytest.skip("this machine has no IPv6 loopback (::1) to run Redis on")
    server = request.param(tmp_path)

    def up():
        assert server.proc.poll() is None, server.log_path.read_text()
        try:
            return server.client(socket_timeout=1).ping()
        except (redis.exceptions.ConnectionError, FileNotFoundError, OSError):
            return False

    try:
        wait_for(up, 10, f"redis-server on {server.path}")
        s = Stack(tmp_path, server)
        request.node._stratq_stack = s
        yield s
        problems = s.teardown()
        assert not problems, "\n".join(problems)
    finally:
        server.stop()


def test_a_job_runs_and_is_cancelled_over_a_unix_socket(unix_stack):
    """Also over TCP to an IPv6 literal ([::1]), which the URL parser once
    refused as "a bad port"."""
    api = unix_stack.start_api().client
    worker = unix_stack.start_worker()
    job = api.wait_job(api.submit({"code": QUICK, "params": {"n": 21}}))
    assert job["status"] == "succeeded" and job["result"] == {"n": 42}, job
    # A cancel reaches the running job through the worker's control channel
    # (its subscription on a second Unix-socket connection).
    sleeper = api.submit({"code": SLEEPER})
    api.wait_printed(sleeper, "started")
    status, _ = api.request("DELETE", f"/v1/jobs/{sleeper}")
    assert status in (200, 202), status
    assert api.wait_job(sleeper)["status"] == "cancelled"
    assert "lost the Redis connection" not in worker.log(), worker.describe()


def test_a_host_that_does_not_resolve_is_told_and_retried(tmp_path, redis_server, request):
    """libevent resolves a host name synchronously (no evdns base): the
    failed connect must reach the API from its loop, after the connection
    exists (it once reached it from inside the connect, which then used a
    freed connection and never retried: a compose stack whose Redis
    container restarted, its name briefly unknown, stayed 503 for good)."""
    s = Stack(tmp_path, redis_server)
    s.redis_url = "redis://nonexistent.invalid:6379"
    request.node._stratq_stack = s
    try:
        api = s.start_api_ready([f"--redis-url={s.redis_url}"], ready=False)
        status, body = wait_for(lambda: (lambda r: r if r[1].get("redis_error") else None)(
            api.client.get("/readyz", timeout=2)), 10, "/readyz to say why")
        assert status == 503 and "nonexistent.invalid" in body["redis_error"], body
        # Still retrying, still answering.
        wait_for(lambda: api.log().count("nonexistent.invalid") >= 1, 5, "the error in the log")
        assert api.alive()
    finally:
        problems = s.teardown()
        assert not problems, "\n".join(problems)
