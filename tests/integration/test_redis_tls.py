"""stratq against a Redis that speaks TLS only and asks for client
certificates, as the ACL users of docs/operations.md: the production
setting of config/deploy/k8s and config/dev/docker-compose.tls.yaml, with
the certificates scripts/dev-certs.sh makes.

The API and the workers connect with ``rediss://USER:PASSWORD@...``,
check the server's certificate against ``STRATQ_REDIS_CACERT`` (for the
URL's host, or ``STRATQ_REDIS_SNI``) and show ``STRATQ_REDIS_CERT`` and
``STRATQ_REDIS_KEY``. A job's whole life runs over it; a certificate from
another CA, a name the certificate does not hold, or no client certificate
keeps them from connecting (the API's /readyz answers 503, the worker does
not register); ``STRATQ_REDIS_TLS_INSECURE=1`` connects without any check
and says so in the log.
"""

import re
import subprocess

import pytest

from conftest import REPO_ROOT, EventStream, wait_for
from test_acl import (PREFIX, QUICK, WORKER_ENV, AclRedis, acl_stack, ok, spawn_api_and_read_readyz,
                      terminal_for)

DEV_CERTS = REPO_ROOT / "scripts" / "dev-certs.sh"


def make_certs(directory):
    r = subprocess.run(["bash", str(DEV_CERTS), "--dir", str(directory)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return directory


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("certs") / "certs")


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory, certs):
    server = AclRedis(tmp_path_factory.mktemp("tls-redis"), tls=certs)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def tls(tls_redis, tmp_path, request):
    yield from acl_stack(tls_redis, tmp_path, request)


def tls_env(certs, **extra):
    env = {"STRATQ_REDIS_CACERT": str(certs / "ca.crt"), "STRATQ_REDIS_CERT": str(certs / "client.crt"),
           "STRATQ_REDIS_KEY": str(certs / "client.key")}
    env.update(extra)
    return {k: v for k, v in env.items() if v is not None}


def refused(stack, env, what):
    """Starts an API and a worker with these settings: neither gets to
    Redis (no registration, /readyz 503), and the worker's log says why
    (``what``, a regular expression, case-insensitive)."""
    registered = stack.r.zcard(f"{PREFIX}:workers")
    worker = stack.spawn("worker", ["worker"], {
        "STRATQ_REDIS_URL": stack.server.user_url("stratq-worker"), **WORKER_ENV, **env})
    _, client, (status, body) = spawn_api_and_read_readyz(
        stack, {"STRATQ_REDIS_URL": stack.server.user_url("stratq-api"), **env})
    assert status == 503, body
    wait_for(lambda: re.search(what, worker.log(), re.I), 15,
             lambda: f"{what!r} in the worker's log\n{worker.describe()}")
    assert stack.r.zcard(f"{PREFIX}:workers") == registered
    assert client.get("/readyz", timeout=2)[0] == 503


def test_a_job_runs_over_tls_as_the_acl_users(tls, certs):
    api_proc = tls.start_api(env=tls_env(certs))
    api = api_proc.client
    worker = tls.start_worker(env=tls_env(certs))
    users = tls.clients_by_user()
    assert {u for names in users.values() for u in names} == {"stratq-api", "stratq-worker"}, users
    events = EventStream(api_proc.port)
    try:
        job_id = api.submit({"code": QUICK, "params": {"n": 9}})
        events.until(terminal_for(job_id))
    finally:
        events.close()
    job = api.job(job_id)
    assert job["status"] == "succeeded" and job["result"] == 9 and job["worker"] == worker.id, job
    assert ok(api, "GET", "/readyz")["ready"] is True
    tls.assert_acl_log_empty()


def test_the_server_name_can_be_given(tls, certs):
    # The certificate names cache (and localhost, 127.0.0.1): SNI=cache
    # works with the URL's 127.0.0.1, a name it lacks does not.
    api = tls.start_api(env=tls_env(certs, STRATQ_REDIS_SNI="cache")).client
    tls.start_worker(env=tls_env(certs, STRATQ_REDIS_SNI="cache"))
    assert api.wait_job(api.submit({"code": QUICK}))["status"] == "succeeded"
    refused(tls, tls_env(certs, STRATQ_REDIS_SNI="not-the-cache"), "certificate|verif|host ?name")


def test_a_certificate_from_another_ca_is_refused(tls, certs, tmp_path):
    other = make_certs(tmp_path / "other-ca")
    refused(tls, tls_env(certs, STRATQ_REDIS_CACERT=str(other / "ca.crt")), "certificate|verif")


def test_redis_refuses_a_client_without_a_certificate(tls, certs):
    refused(tls, tls_env(certs, STRATQ_REDIS_CERT=None, STRATQ_REDIS_KEY=None), "tls|ssl|certificate")


def test_insecure_connects_without_checking_and_says_so(tls, certs, tmp_path):
    other = make_certs(tmp_path / "other-ca")
    env = tls_env(certs, STRATQ_REDIS_CACERT=str(other / "ca.crt"), STRATQ_REDIS_TLS_INSECURE="1")
    api_proc = tls.start_api(env=env)
    worker = tls.start_worker(env=env)
    assert api_proc.client.wait_job(api_proc.client.submit({"code": QUICK}))["status"] == "succeeded"
    for proc in (api_proc, worker):
        loud = [line for line in proc.log_lines_json()
                if line.get("level") in ("warn", "error") and "insecure" in str(line).lower()]
        assert loud, f"no warning about the unchecked certificate\n{proc.describe()}"
