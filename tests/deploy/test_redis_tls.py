"""Redis over TLS in the development stack: config/dev/docker-compose.tls.yaml
(an override of docker-compose.yaml) and scripts/dev-certs.sh, which makes
its throwaway CA and certificates with the openssl command line.

The override is validated and merged by Debian's docker-compose 1.29, as
test_compose.py does for the base file. The certificates are made for real,
and Debian's redis-server is started with the cache service's own TLS
arguments (its container paths mapped to the directory the script wrote)
on a free loopback port: a client that checks Redis' certificate for the
name `cache`, as the API and the workers do, and shows the client
certificate gets PONG; one without a client certificate is refused; and the
service's healthcheck command answers. No Docker engine is needed.

    /usr/bin/python3 -m pytest -q tests/deploy/test_redis_tls.py
"""

import os
import shlex
import signal
import socket
import ssl
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from test_compose import COMPOSE, COMPOSE_REL, compose_env, docker_compose, env_of

REPO = Path(__file__).resolve().parents[2]
# The port and polling helpers of the chaos scripts and the integration tests.
sys.path.insert(0, str(REPO / "tests" / "chaos"))
from stack import free_port, wait_for  # noqa: E402
TLS_REL = "config/dev/docker-compose.tls.yaml"
DEV_CERTS = REPO / "scripts" / "dev-certs.sh"
DEPLOY_MD = REPO / "docs" / "deploy.md"
REDIS_SERVER = os.environ.get("STRATQ_TEST_REDIS_SERVER", "/usr/bin/redis-server")
REDIS_CLI = os.environ.get("STRATQ_TEST_REDIS_CLI", "/usr/bin/redis-cli")
PASSWORD = "tls-test-password"
STRATQ_APPS = ("api", "worker")
# What the script writes, and who reads what.
CERT_FILES = {"ca.crt", "ca.key", "redis.crt", "redis.key", "client.crt", "client.key"}
PRIVATE = {"ca.key"}  # never leaves the host


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs") / "certs"
    r = subprocess.run(["bash", str(DEV_CERTS), "--dir", str(d)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return d


@pytest.fixture(scope="module")
def merged(certs):
    """The two files merged by docker-compose 1.29, with the certificates'
    directory and the password set as a user would."""
    r = subprocess.run([docker_compose(), "-f", COMPOSE_REL, "-f", TLS_REL, "config"], cwd=REPO,
                       env=compose_env(STRATQ_DEV_CERTS=str(certs), REDIS_PASSWORD=PASSWORD),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return yaml.safe_load(r.stdout)["services"]


def cert_mount(service):
    """(host directory, container directory) of a service's read-only
    bind mount of the certificates."""
    mounts = [v for v in service.get("volumes", []) if isinstance(v, dict) and v.get("type") == "bind"]
    assert len(mounts) == 1, service.get("volumes")
    assert mounts[0].get("read_only") is True, mounts[0]
    return mounts[0]["source"], mounts[0]["target"]


def flag(command, name):
    return command[command.index(name) + 1]


def host_path(service, path):
    """A container path inside the certificates' mount, on the host."""
    source, target = cert_mount(service)
    assert path.startswith(target.rstrip("/") + "/"), f"{path} is not in the mount {target}"
    return Path(source) / path[len(target.rstrip("/")) + 1:]


# ---------------------------------------------------------------- the files


def test_the_override_validates():
    r = subprocess.run([docker_compose(), "-f", COMPOSE_REL, "-f", TLS_REL, "config", "-q"], cwd=REPO,
                       env=compose_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and not r.stdout, r.stdout + r.stderr
    assert "WARNING" not in r.stderr, r.stderr


def test_dev_certs_makes_a_ca_and_certificates_for_cache(certs):
    assert {p.name for p in certs.iterdir()} == CERT_FILES
    for name in CERT_FILES:
        mode = (certs / name).stat().st_mode & 0o777
        assert mode == (0o600 if name in PRIVATE else 0o644), (name, oct(mode))

    def x509(name, *args):
        r = subprocess.run(["openssl", "x509", "-in", str(certs / name), "-noout", *args],
                           capture_output=True, text=True, check=True)
        return r.stdout

    for name in ("redis.crt", "client.crt"):
        r = subprocess.run(["openssl", "verify", "-CAfile", str(certs / "ca.crt"), str(certs / name)],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
    server = x509("redis.crt", "-ext", "subjectAltName,extendedKeyUsage")
    assert "DNS:cache" in server and "IP Address:127.0.0.1" in server and "Server Authentication" in server
    assert "Client Authentication" in x509("client.crt", "-ext", "extendedKeyUsage")
    assert "CA:TRUE" in x509("ca.crt", "-ext", "basicConstraints")
    # Run again, it keeps the CA a running stack trusts, unless told.
    again = subprocess.run(["bash", str(DEV_CERTS), "--dir", str(certs)], capture_output=True, text=True)
    assert again.returncode == 1 and "--force" in again.stderr, again.stderr


def test_redis_listens_with_tls_only_and_asks_for_client_certificates(merged, certs):
    cache = merged["cache"]
    cmd = cache["command"]
    assert flag(cmd, "--port") == "0", "a plain port besides TLS"
    assert flag(cmd, "--tls-port") == "6379"
    assert "--tls-auth-clients" not in cmd or flag(cmd, "--tls-auth-clients") == "yes"
    for opt, name in (("--tls-cert-file", "redis.crt"), ("--tls-key-file", "redis.key"),
                      ("--tls-ca-cert-file", "ca.crt")):
        path = host_path(cache, flag(cmd, opt))
        assert path == certs / name, (opt, path)
    # What the base file has stays: AOF, the password, the data volume.
    assert flag(cmd, "--appendonly") == "yes" and flag(cmd, "--requirepass") == PASSWORD
    assert any(isinstance(v, str) and v.startswith("cache-data:") or
               isinstance(v, dict) and v.get("source") == "cache-data" for v in cache["volumes"])


@pytest.mark.parametrize("app", STRATQ_APPS)
def test_stratq_services_use_rediss_with_the_ca_and_the_client_certificate(merged, certs, app):
    service = merged[app]
    env = env_of(service)
    url = urlsplit(env["STRATQ_REDIS_URL"])
    assert url.scheme == "rediss" and url.hostname == "cache", env["STRATQ_REDIS_URL"]
    assert url.port == int(flag(merged["cache"]["command"], "--tls-port"))
    assert url.password == PASSWORD
    for setting, name in (("STRATQ_REDIS_CACERT", "ca.crt"), ("STRATQ_REDIS_CERT", "client.crt"),
                          ("STRATQ_REDIS_KEY", "client.key")):
        assert host_path(service, env[setting]) == certs / name, setting
    assert "STRATQ_REDIS_TLS_INSECURE" not in env
    # The hardening of the base file stays.
    assert service["read_only"] is True and service["cap_drop"] == ["ALL"]


# ---------------------------------------------------------------- for real


@pytest.fixture(scope="module")
def tls_redis(merged, certs, tmp_path_factory):
    """Debian's redis-server with the cache service's TLS arguments, on a
    free loopback port."""
    cache = merged["cache"]
    cmd = cache["command"]
    assert cmd[0] == "redis-server"
    args = []
    for opt in ("--tls-cert-file", "--tls-key-file", "--tls-ca-cert-file"):
        args += [opt, str(host_path(cache, flag(cmd, opt)))]
    port = free_port()
    workdir = tmp_path_factory.mktemp("tls-redis")
    proc = subprocess.Popen([REDIS_SERVER, "--port", flag(cmd, "--port"), "--tls-port", str(port),
                             "--requirepass", flag(cmd, "--requirepass"), *args,
                             "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(workdir)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)

    def listening():
        assert proc.poll() is None, proc.stdout.read().decode(errors="replace")
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    try:
        wait_for(listening, 30, f"redis-server with TLS on {port}")
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def tls_command(port, certs, *command, client_cert=True, server_hostname="cache"):
    """Sends AUTH and one command over TLS as the API and the workers do
    (the server's certificate checked for `cache`); returns the replies."""
    ctx = ssl.create_default_context(cafile=str(certs / "ca.crt"))
    if client_cert:
        ctx.load_cert_chain(str(certs / "client.crt"), str(certs / "client.key"))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=server_hostname) as s:
            def resp(*words):
                return b"".join([f"*{len(words)}\r\n".encode()] +
                                [f"${len(w)}\r\n{w}\r\n".encode() for w in words])
            s.sendall(resp("AUTH", PASSWORD) + resp(*command))
            data = b""
            while data.count(b"\r\n") < 2:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            return data.decode().split("\r\n")[:2]


def test_the_certificates_serve_redis_over_tls(tls_redis, certs):
    assert tls_command(tls_redis, certs, "PING") == ["+OK", "+PONG"]


def test_redis_refuses_a_client_without_a_certificate(tls_redis, certs):
    # The server asks for a client certificate; without one the handshake
    # (or, with TLS 1.3, the first read) fails.
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        replies = tls_command(tls_redis, certs, "PING", client_cert=False)
        assert replies[:1] != ["+OK"], replies
        raise ConnectionError(f"refused: {replies}")


def test_the_certificate_is_checked_for_the_service_name(tls_redis, certs):
    with pytest.raises(ssl.SSLCertVerificationError):
        tls_command(tls_redis, certs, "PING", server_hostname="not-cache")


def test_the_healthcheck_command_answers(merged, tls_redis, certs):
    cache = merged["cache"]
    kind, command = cache["healthcheck"]["test"]
    assert kind == "CMD-SHELL"
    # The container's paths, mapped to the host's; and the test Redis' port.
    _, target = cert_mount(cache)
    command = command.replace(target, str(certs)).replace("redis-cli", f"{shlex.quote(REDIS_CLI)} -p {tls_redis}")
    assert "--tls" in command
    r = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=30,
                       env={**os.environ, "REDISCLI_AUTH": env_of(cache)["REDISCLI_AUTH"]})
    assert r.returncode == 0, r.stdout + r.stderr


def test_deploy_md_tells_how_to_run_it():
    text = DEPLOY_MD.read_text()
    for word in ("scripts/dev-certs.sh", "-f config/dev/docker-compose.tls.yaml", "STRATQ_DEV_CERTS",
                 "--port 0", "redis-cli --tls"):
        assert word in text, f"docs/deploy.md does not mention {word}"
    assert COMPOSE.name in text
