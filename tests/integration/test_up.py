"""`stratq up`: the one-machine stack (API + N workers, and redis-server
unless given a URL) as a single supervised process."""

import signal
from pathlib import Path

import pytest

from conftest import STOP_TIMEOUT, WORKERS_KEY, Api, START_TIMEOUT, descendants, free_port, pid_alive, wait_for

SQUARE = "def run(ctx):\n    return ctx.params['n'] ** 2\n"


def start_up(stack, args):
    port = free_port()
    up = stack.spawn("up", ["up", "--port", str(port), *args])
    api = Api(f"http://127.0.0.1:{port}")

    def healthy():
        assert up.alive(), f"stratq up exited with {up.popen.returncode}\n{up.describe()}"
        return api.healthy()

    wait_for(healthy, START_TIMEOUT, lambda: f"stratq up to serve /healthz on port {port}\n{up.describe()}")
    return up, api


def sigterm_and_check_gone(up, pids):
    up.popen.send_signal(signal.SIGTERM)
    try:
        rc = up.popen.wait(timeout=STOP_TIMEOUT)
    except Exception:
        raise AssertionError(f"stratq up did not exit within {STOP_TIMEOUT}s of SIGTERM\n{up.describe()}")
    assert rc == 0, f"stratq up exit status {rc}\n{up.describe()}"
    left = {pid: comm for pid, comm in pids.items() if pid_alive(pid)}
    assert not left, f"processes of stratq up still running after it exited: {left}\n{up.describe()}"


def test_up_with_redis_url(stack, r):
    up, api = start_up(stack, ["--workers", "2", "--redis-url", stack.redis_url])

    workers = wait_for(
        lambda: (lambda w: w if len(w) == 2 else None)(stack.worker_ids_by_pid()),
        START_TIMEOUT,
        lambda: f"2 workers in {WORKERS_KEY}: {r.zrange(WORKERS_KEY, 0, -1)}\n{up.describe()}",
    )
    tree = descendants(up.pid)
    assert set(workers) <= set(tree), f"worker pids {sorted(workers)} are not children of up: {tree}"
    assert "redis-server" not in tree.values(), f"up started redis-server despite --redis-url: {tree}"
    assert api.queue()["workers"] == 2

    jobs = {api.submit({"code": SQUARE, "params": {"n": n}}): n for n in range(6)}
    for job_id, n in jobs.items():
        job = api.wait_job(job_id)
        assert job["status"] == "succeeded" and job["result"] == n * n, job
        assert job["worker"] in workers.values(), job

    sigterm_and_check_gone(up, tree)
    assert r.zcard(WORKERS_KEY) == 0, r.zrange(WORKERS_KEY, 0, -1)
    assert not api.healthy()


def test_up_starts_its_own_redis(stack):
    up, api = start_up(stack, ["--workers", "1"])
    tree = wait_for(
        lambda: (lambda t: t if "redis-server" in t.values() else None)(descendants(up.pid)),
        START_TIMEOUT,
        lambda: f"a redis-server under stratq up: {descendants(up.pid)}",
    )
    job = api.wait_job(api.submit({"code": SQUARE, "params": {"n": 11}}))
    assert job["status"] == "succeeded" and job["result"] == 121, job
    sigterm_and_check_gone(up, descendants(up.pid) | tree)


def test_up_keeps_its_redis_password_out_of_argv(stack):
    """The local Redis has a random password, which the API and workers get
    through their environment, never their command line (readable by any
    process as /proc/PID/cmdline)."""
    import redis as redis_py

    up, api = start_up(stack, ["--workers", "1"])
    conf = (stack.tmp_path / ".stratq" / "redis" / "redis.conf").read_text()
    password = next(line.split()[1] for line in conf.splitlines() if line.startswith("requirepass"))
    port = int(next(line.split()[1] for line in conf.splitlines() if line.startswith("port ")))
    assert len(password) >= 16
    with pytest.raises(redis_py.AuthenticationError):
        redis_py.Redis(host="127.0.0.1", port=port).ping()
    assert redis_py.Redis(host="127.0.0.1", port=port, password=password).ping()
    tree = descendants(up.pid)
    assert tree, "stratq up has no children"
    for pid in list(tree) + [up.pid]:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        assert password.encode() not in cmdline, (pid, cmdline)
    job = api.wait_job(api.submit({"code": SQUARE, "params": {"n": 3}}))
    assert job["status"] == "succeeded" and job["result"] == 9, job
    sigterm_and_check_gone(up, descendants(up.pid) | tree)
