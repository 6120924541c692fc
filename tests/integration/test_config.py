"""Settings: every one is an environment variable and a flag; a flag wins
over the environment."""

import socket

from conftest import Api, START_TIMEOUT, free_port, wait_for

QUICK = "def run(ctx):\n    return 'ok'\n"


def closed_redis_url():
    return f"redis://127.0.0.1:{free_port()}"


def refuses(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def start_and_wait_healthy(stack, args, env, port):
    proc = stack.spawn("api", args, env)
    api = Api(f"http://127.0.0.1:{port}")

    def healthy():
        assert proc.alive(), f"stratq api exited with {proc.popen.returncode}\n{proc.describe()}"
        return api.healthy()

    wait_for(healthy, START_TIMEOUT, lambda: f"/healthz on port {port}\n{proc.describe()}")
    return proc, api


def test_settings_from_environment(stack, r):
    port = free_port()
    env = {"STRATQ_API_PORT": str(port), "STRATQ_REDIS_URL": stack.redis_url, "STRATQ_API_BIND": "127.0.0.1"}
    _, api = start_and_wait_healthy(stack, ["api"], env, port)

    worker = stack.spawn("worker", ["worker"], {"STRATQ_REDIS_URL": stack.redis_url})
    wait_for(lambda: worker.pid in stack.worker_ids_by_pid(), START_TIMEOUT, lambda: f"worker to register\n{worker.describe()}")
    job = api.wait_job(api.submit({"code": QUICK}))
    assert job["status"] == "succeeded" and job["result"] == "ok", job


def test_flags_override_environment(stack, r):
    env_port, flag_port = free_port(), free_port()
    env = {"STRATQ_API_PORT": str(env_port), "STRATQ_REDIS_URL": closed_redis_url()}
    _, api = start_and_wait_healthy(
        stack, ["api", "--port", str(flag_port), "--redis-url", stack.redis_url], env, flag_port
    )
    assert refuses(env_port)

    worker = stack.start_worker(env={"STRATQ_REDIS_URL": closed_redis_url()})
    job = api.wait_job(api.submit({"code": QUICK}))
    assert job["status"] == "succeeded" and job["worker"] == worker.id, job
