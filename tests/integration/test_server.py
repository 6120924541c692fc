"""The API's server core (src/api/server.c): routing a request to its
route or answering 404 and 405, the limits of a body and of connections,
bearer tokens and the loopback-only default, and the requests that wait for Redis (503 with
Retry-After when it hangs or goes)."""

import json
import os
import signal
import socket
import time

import pytest

from conftest import QUEUE, free_port, wait_for

GOOD = "def run(ctx):\n    return 1\n"


# --------------------------------------------------------------------------
# Routing
# --------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1", "/v1/nope", "/v2/jobs", "/v1/jobs/abc/def/ghi", "/healthz/x"])
def test_unknown_route_is_404(stack, path):
    api = stack.start_api().client
    status, resp = api.get(path)
    assert status == 404, (path, status, resp)
    assert isinstance(resp, dict) and isinstance(resp.get("error"), str), resp


@pytest.mark.parametrize(
    "method,path",
    [("PUT", "/v1/jobs"), ("DELETE", "/v1/queue"), ("POST", "/v1/queue"), ("PATCH", "/v1/jobs"), ("POST", "/healthz")],
)
def test_wrong_method_is_405(stack, method, path):
    api = stack.start_api().client
    status, resp = api.request(method, path, raw=b"{}")
    assert status == 405, (method, path, status, resp)
    assert isinstance(resp, dict) and isinstance(resp.get("error"), str), resp


# --------------------------------------------------------------------------
# Limits
# --------------------------------------------------------------------------


def test_body_over_max_body_is_413(stack, r):
    limit = 4096
    api = stack.start_api(env={"STRATQ_MAX_BODY": str(limit)}).client

    fits = json.dumps({"code": GOOD, "data": "x" * (limit - 100)}).encode()
    assert len(fits) <= limit
    status, resp = api.request("POST", "/v1/jobs", raw=fits)
    assert status == 201, (status, resp)

    too_big = json.dumps({"code": GOOD, "data": "x" * (limit + 1)}).encode()
    status, resp = api.request("POST", "/v1/jobs", raw=too_big)
    assert status == 413, (status, resp)
    assert isinstance(resp, dict) and isinstance(resp.get("error"), str), resp
    assert r.llen(QUEUE) == 1


def http_get(port, path="/healthz"):
    """A socket with one keep-alive GET sent on it, and the status line and
    headers of its answer (the connection stays open)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        assert chunk, head
        head += chunk
    return sock, head


def test_a_connection_past_max_connections_is_503_naming_the_limit(stack):
    """STRATQ_MAX_CONNECTIONS: two open keep-alive connections fill a limit
    of 2; a third gets 503 naming the setting and is closed; once one of
    the two closes, a new connection is served."""
    proc = stack.start_api(env={"STRATQ_MAX_CONNECTIONS": "2"})
    socks = []
    try:
        for _ in range(2):
            sock, head = http_get(proc.port)
            socks.append(sock)
            assert head.startswith(b"HTTP/1.1 200 "), head
        sock, head = http_get(proc.port)
        socks.append(sock)
        assert head.startswith(b"HTTP/1.1 503 "), head
        assert b"Connection: close" in head, head
        body = head.partition(b"\r\n\r\n")[2]
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            body += chunk
        assert "STRATQ_MAX_CONNECTIONS is 2" in json.loads(body)["error"], body
        socks.pop(0).close()
        wait_for(lambda: proc.client.get("/healthz")[0] == 200, 10, "a connection freed")
    finally:
        for sock in socks:
            sock.close()


# --------------------------------------------------------------------------
# Auth
# --------------------------------------------------------------------------


def test_auth(stack, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text("# team tokens\n\nsecret-one\n  secret-two  \n")
    api = stack.start_api(env={"STRATQ_API_TOKENS_FILE": str(tokens)}).client
    assert api.get("/healthz")[0] == 200
    assert api.get("/readyz")[0] == 200
    status, body = api.get("/v1/queue")
    assert status == 401 and "Bearer" in body["error"], body
    status, body = api.get("/v1/queue", headers={"Authorization": "Bearer nope"})
    assert status == 403, body
    for tok in ("secret-one", "secret-two"):
        assert api.get("/v1/queue", headers={"Authorization": f"Bearer {tok}"})[0] == 200
    assert api.get("/metrics")[0] == 401
    # Tokens never reach the log.
    log = stack.procs[-1].log()
    assert "secret-one" not in log and "nope" not in log


def test_no_tokens_means_loopback_only(stack):
    proc = stack.spawn("api", ["api", "--port", str(free_port()), "--bind", "0.0.0.0",
                               "--redis-url", stack.redis_url])
    assert proc.popen.wait(timeout=20) == 2
    assert "STRATQ_API_TOKENS_FILE" in proc.log()


# --------------------------------------------------------------------------
# Requests that wait for Redis
# --------------------------------------------------------------------------


def test_redis_unreachable_is_503_with_retry_after_within_2s(private_redis, stack):
    proc = private_redis.proc
    api_proc = stack.start_api(args=["--redis-url", private_redis.url])
    api = api_proc.client
    assert api.get("/v1/queue")[0] == 200
    os.kill(proc.pid, signal.SIGSTOP)  # Redis hangs: connected, never answering
    try:
        t0 = time.monotonic()
        req = __import__("urllib.request").request.Request(api.base_url + "/v1/queue")
        try:
            __import__("urllib.request").request.urlopen(req, timeout=10)
            raise AssertionError("expected 503")
        except __import__("urllib.error").error.HTTPError as e:
            assert e.code == 503 and e.headers["Retry-After"], e
            assert "Redis" in json.loads(e.read())["error"]
        assert time.monotonic() - t0 < 3.5
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    private_redis.stop()
    status, body = wait_for(lambda: (lambda sb: sb if sb[0] == 503 else None)(api.get("/v1/queue")),
                            10, "503 once Redis is gone")
    assert "Redis" in body["error"]
    assert api.get("/readyz")[0] == 503
