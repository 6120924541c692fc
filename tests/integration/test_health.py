"""The worker's health port (STRATQ_HEALTH_PORT): /livez, /healthz, /readyz
and /metrics, over real HTTP, as Kubernetes probes and Prometheus use them."""

import json
import signal
import urllib.error
import urllib.request

from conftest import free_port, wait_for


def get(port, path):
    """(status, body text); (0, "") while nothing listens on the port."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except urllib.error.URLError:
        return 0, ""


def probe(port, path):
    status, body = get(port, path)
    return status, json.loads(body) if body else {}


def metric(text, name, **labels):
    """The value of the sample ``name{labels...}`` in Prometheus text."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name + "{"):
            continue
        key, value = line.rsplit(" ", 1)
        if all(f'{k}="{v}"' in key for k, v in labels.items()):
            return float(value)
    return None


def start(stack, **env):
    port = free_port()
    worker = stack.start_worker(env={"STRATQ_HEALTH_PORT": str(port),
                                     "STRATQ_HEALTH_BIND": "127.0.0.1", **env})
    wait_for(lambda: probe(port, "/readyz")[0] == 200, 30, "the worker to be ready")
    return worker, port


def test_probes_and_metrics_of_a_working_worker(stack):
    api = stack.start_api().client
    worker, port = start(stack)
    for path in ("/livez", "/healthz", "/readyz"):
        status, body = probe(port, path)
        assert status == 200 and body["status"] == "ok", (path, body)
        assert body["worker"] == worker.id
        assert body["redis_connected"] and body["executor_up"] and body["registered"]
    status, text = get(port, "/metrics")
    assert status == 200
    assert metric(text, "stratq_worker_busy") == 0
    assert metric(text, "stratq_worker_jobs_total", status="succeeded") == 0
    assert metric(text, "stratq_worker_sandbox_layer", layer="seccomp") == 1
    assert metric(text, "stratq_worker_rss_bytes") > 1_000_000
    ok = api.wait_job(api.submit({"code": "def run(ctx):\n    return 1\n"}))
    bad = api.wait_job(api.submit({"code": "def run(ctx):\n    raise ValueError('x')\n"}))
    assert ok["status"] == "succeeded" and bad["status"] == "failed"

    def counted():
        text = get(port, "/metrics")[1]
        return text if metric(text, "stratq_worker_jobs_total", status="failed") == 1 else None

    text = wait_for(counted, 10, "the failed job in /metrics")
    assert metric(text, "stratq_worker_jobs_total", status="succeeded") == 1
    assert metric(text, "stratq_worker_job_duration_seconds_count") == 2
    assert metric(text, "stratq_worker_job_duration_seconds_bucket", le="+Inf") == 2
    assert metric(text, "stratq_worker_executor_restarts_total") == 0
    assert get(port, "/nope")[0] == 404


def test_busy_then_draining_is_not_ready_but_alive(stack):
    api = stack.start_api().client
    worker, port = start(stack, STRATQ_DRAIN_TIMEOUT_S="20")
    job_id = api.submit({"code": "import time\n\ndef run(ctx):\n    print('go', flush=True)\n"
                                 "    time.sleep(3)\n    return 1\n"})
    api.wait_printed(job_id, "go")
    assert metric(get(port, "/metrics")[1], "stratq_worker_busy") == 1
    worker.popen.send_signal(signal.SIGTERM)
    status, body = wait_for(lambda: (lambda s, b: (s, b) if s == 503 else None)(
        *probe(port, "/readyz")), 10, "readyz to fail while draining")
    assert body["state"] == "draining"
    assert probe(port, "/livez")[0] == 200  # still alive: finishing its job
    assert api.wait_job(job_id)["status"] == "succeeded"


def test_redis_down_fails_healthz_but_not_livez(stack, private_redis):
    port = free_port()
    stack.spawn("worker", ["worker", "--redis-url", private_redis.url],
                {"STRATQ_HEALTH_PORT": str(port), "STRATQ_HEALTH_BIND": "127.0.0.1"})
    wait_for(lambda: probe(port, "/readyz")[0] == 200, 30, "the worker to be ready")
    private_redis.stop()
    status, body = wait_for(lambda: (lambda s, b: (s, b) if s == 503 else None)(
        *probe(port, "/healthz")), 30, "healthz to fail without Redis")
    assert body["redis_connected"] is False
    assert probe(port, "/readyz")[0] == 503
    assert probe(port, "/livez")[0] == 200
    private_redis.start()
    wait_for(lambda: probe(port, "/healthz")[0] == 200, 30, "healthz to pass again")


def test_a_port_in_use_is_a_clear_error(stack):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    port = s.getsockname()[1]
    try:
        proc = stack.spawn("worker", ["worker", "--redis-url", stack.redis_url],
                           {"STRATQ_HEALTH_PORT": str(port), "STRATQ_HEALTH_BIND": "127.0.0.1"})
        wait_for(lambda: not proc.alive(), 30, "the worker to exit")
        assert proc.popen.returncode != 0
        assert f"cannot serve the health port 127.0.0.1:{port}" in proc.log(), proc.describe()
    finally:
        s.close()
