"""The development stack of config/dev/docker-compose.yaml on the real Docker
Engine (`make compose-test`; part of `make test` when `docker info` answers).

Every test drives the stack with the commands the worker scaling guide and
docs/deploy.md give (`docker-compose -f config/dev/docker-compose.yaml ...`,
scripts/scale-workers.sh dev, scripts/monitor-workers.sh dev). The only
things set apart from a user's run are in the environment, as a user would
set them: COMPOSE_PROJECT_NAME (a project of this run's own, so nothing of
the user's is touched), STRATQ_API_HOST_PORT (a free loopback port instead of
8080) and REDIS_PASSWORD (a fresh one). The images come from `make images`
(Debian's archive, no registry). At the end the project's containers are
removed by id, then its network and volume by `down -v`."""

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# The HTTP client and the polling helpers are the chaos scripts' (as for
# tests/integration).
sys.path.insert(0, str(REPO / "tests" / "chaos"))
import stack  # noqa: E402
from stack import TERMINAL, free_port, wait_for  # noqa: E402,F401  (wait_for is for the tests)

COMPOSE_FILE = "config/dev/docker-compose.yaml"
IMAGES = ("debian:bookworm-slim", "stratq:dev", "stratq-redis:dev")
TOKEN = next(line.strip() for line in (REPO / "config/dev/api-tokens.dev").read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#"))
FIGURES = {}  # measured while testing, printed at the end


def docker_answers():
    try:
        return subprocess.run(["docker", "info"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def docker(*args, check=True, timeout=120, **kw):
    r = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        pytest.fail(f"docker {' '.join(args)} -> {r.returncode}: {r.stderr.strip()}")
    return r


def inspect(cid):
    return json.loads(docker("inspect", cid).stdout)[0]


class Api(stack.Api):
    """The chaos scripts' client with the dev token, and the job calls the
    tests use."""

    def __init__(self, base_url, token=TOKEN):
        super().__init__(base_url, token)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def submit(self, spec):
        status, body = self.request("POST", "/v1/jobs", spec)
        assert status == 201, f"POST /v1/jobs -> {status} {body}"
        return body["id"]

    def try_submit(self, spec):
        """The new job's id, or None while the API cannot take it."""
        try:
            status, body = self.request("POST", "/v1/jobs", spec, timeout=5)
        except OSError:
            return None
        return body["id"] if status == 201 else None

    def job(self, job_id):
        status, body = self.get(f"/v1/jobs/{job_id}")
        assert status == 200, f"GET /v1/jobs/{job_id} -> {status} {body}"
        return body

    def wait_job(self, job_id, timeout=60):
        """The job's record once it is terminal (GET ?wait= long-polls)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"job {job_id} not finished after {timeout}s: {self.job(job_id)}")
            status, body = self.get(f"/v1/jobs/{job_id}?wait={max(1, min(int(left), 20))}",
                                    timeout=left + 10)
            assert status == 200, f"GET /v1/jobs/{job_id}?wait -> {status} {body}"
            if body["status"] in TERMINAL:
                return body


class Compose:
    """One Compose project of the dev file: the guide's commands with this
    run's project name, port and password in their environment."""

    def __init__(self):
        self.project = f"stratq-ct-{os.getpid()}-{secrets.token_hex(2)}"
        self.port = free_port()
        self.password = secrets.token_hex(12)
        self.env = dict(os.environ, COMPOSE_PROJECT_NAME=self.project,
                        STRATQ_API_HOST_PORT=str(self.port), REDIS_PASSWORD=self.password)
        # The user's own settings for the file would change what is tested.
        self.env.pop("STRATQ_API_TOKENS_SRC", None)
        self.api = Api(f"http://127.0.0.1:{self.port}")
        self.seen = set()  # every container id the project had, for the teardown

    def run(self, *args, check=True, timeout=300, cmd=None):
        """`docker-compose -f config/dev/docker-compose.yaml ARGS` (or CMD)
        from the repository's root."""
        argv = cmd or ["docker-compose", "-f", COMPOSE_FILE, *args]
        r = subprocess.run(argv, cwd=REPO, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            pytest.fail(f"{' '.join(argv)} -> {r.returncode}\n{r.stdout}\n{r.stderr}")
        return r

    def ids(self, service, all_states=False):
        """Container ids of a service, from the project's labels."""
        args = ["ps", "-q", "--no-trunc", "--filter", f"label=com.docker.compose.project={self.project}",
                "--filter", f"label=com.docker.compose.service={service}"]
        if all_states:
            args.insert(1, "-a")
        ids = docker(*args).stdout.split()
        self.seen.update(ids)
        return ids

    def running(self, service):
        return [c for c in self.ids(service) if inspect(c)["State"]["Running"]]

    def healthy(self, service, n):
        """The service has exactly n running containers, all healthy."""
        ids = self.running(service)
        if len(ids) != n:
            return None
        states = [inspect(c)["State"].get("Health", {}).get("Status") for c in ids]
        return ids if all(s == "healthy" for s in states) else None

    def wait_healthy(self, service, n, timeout=120):
        return wait_for(lambda: self.healthy(service, n), timeout,
                        lambda: f"{n} healthy {service} containers (now: "
                        f"{[(c[:12], inspect(c)['State'].get('Health', {}).get('Status')) for c in self.ids(service)]})",
                        interval=0.5)

    def redis(self, *args):
        """redis-cli in the cache container, as the guide runs it."""
        [cache] = self.ids("cache")
        return docker("exec", cache, "redis-cli", *args).stdout.strip()

    def teardown(self):
        self.ids("cache", all_states=True)
        self.ids("api", all_states=True)
        self.ids("worker", all_states=True)
        if self.seen:
            subprocess.run(["docker", "rm", "-f", "-v", *sorted(self.seen)], capture_output=True, timeout=120)
        # The network and the named volume the project made.
        self.run("down", "-v", "--remove-orphans", check=False, timeout=120)


@pytest.fixture(scope="session")
def compose():
    if not docker_answers():
        pytest.skip("no Docker Engine answers here (docker info fails)")
    missing = [i for i in IMAGES if docker("image", "inspect", i, check=False).returncode != 0]
    if missing:
        pytest.fail(f"images {missing} are missing: run `make images` (make compose-test does)")
    c = Compose()
    try:
        t0 = time.monotonic()
        c.run("up", "-d")
        # A user's first job, submitted as soon as the API takes it: the time
        # from `up -d` to its result is printed at the end (docs/deploy.md).
        first = wait_for(lambda: c.api.try_submit({"code": "def run(ctx):\n    return 'first'\n"}), 120,
                         "the API to take a job after `up -d`", interval=0.1)
        job = c.api.wait_job(first, timeout=120)
        assert job["status"] == "succeeded" and job["result"] == "first", job
        FIGURES["up -d to the first job's result"] = f"{time.monotonic() - t0:.1f} s"
        c.wait_healthy("cache", 1)
        c.wait_healthy("api", 1)
        c.wait_healthy("worker", 3)
        wait_for(c.api.healthy, 60, "the API's /healthz on the published port")
        yield c
    finally:
        c.teardown()


@pytest.fixture
def api(compose):
    return compose.api


def pytest_terminal_summary(terminalreporter):
    for what, value in FIGURES.items():
        terminalreporter.write_line(f"compose-test: {what}: {value}")
