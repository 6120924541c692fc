"""`stratq up`: the one-machine stack (API + N workers, and redis-server
unless given a URL) as a single supervised process."""

import signal

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
