"""stratq over a Redis Unix socket (``unix:/path``): the API and a worker
connect, a job runs, is cancelled while it runs, and the events reach the
API's subscription. The worker's connection once failed on every command
there (hiredis' TCP keepalive on a Unix socket); stratq's own transport
(src/queue/wire.c) sets TCP options on TCP sockets only."""

import subprocess

import pytest
import redis

from conftest import REDIS_SERVER, STOP_TIMEOUT, Stack, wait_for

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


@pytest.fixture
def unix_stack(tmp_path, request):
    server = UnixRedis(tmp_path)

    def up():
        assert server.proc.poll() is None, server.log_path.read_text()
        try:
            return server.client(socket_timeout=1).ping()
        except (redis.exceptions.ConnectionError, FileNotFoundError):
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
