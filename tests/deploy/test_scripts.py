"""scripts/scale-workers.sh and scripts/monitor-workers.sh (docs/operations.md,
"Scripts"), and .github/workflows/deploy.yml.

There is no Docker engine and no cluster here, so `docker`, `docker-compose`
and `kubectl` are fakes: small executables this module writes into a
temporary directory, which log their argv and print canned output. Each test
runs the scripts with a PATH of those fakes plus a directory of links to
everything in /usr/bin except the real docker, docker-compose and kubectl,
so a script can never reach a real one. The stratq API the monitor reads is
a canned HTTP server on loopback.

The local environment is tested for real: `stratq up` (with its own
redis-server) is scaled from 2 to 3 to 2 workers while slow jobs run, and
every job must succeed exactly once.

Every wait is bounded; every process a test starts is stopped by its pid.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCALE = REPO / "scripts" / "scale-workers.sh"
MONITOR = REPO / "scripts" / "monitor-workers.sh"
WORKFLOW = REPO / ".github" / "workflows" / "deploy.yml"
STRATQ_BIN = Path(os.environ.get("STRATQ_SCRIPTS_BIN", REPO / "build" / "stratq"))
REAL_TOOLS = ("docker", "docker-compose", "kubectl")
SCRIPT_TIMEOUT = 60


# --------------------------------------------------------------------------
# Helpers: fake executables, a canned API, running the scripts
# --------------------------------------------------------------------------

FAKE = r'''#!/usr/bin/python3
"""A fake %(prog)s: logs its argv, answers by the first rule that matches."""
import json, os, sys, time
prog = os.path.basename(sys.argv[0])
argv = sys.argv[1:]
d = os.environ["FAKE_DIR"]
with open(os.path.join(d, "calls.jsonl"), "a") as f:
    f.write(json.dumps({"prog": prog, "argv": argv, "pid": os.getpid()}) + "\n")
with open(os.path.join(d, "rules.json")) as f:
    rules = json.load(f)
for rule in rules:
    if rule.get("prog", prog) != prog:
        continue
    if not all(tok in argv for tok in rule.get("has", [])):
        continue
    if any(tok in argv for tok in rule.get("not", [])):
        continue
    sys.stdout.write(rule.get("stdout", ""))
    sys.stdout.flush()
    sys.stderr.write(rule.get("stderr", ""))
    sys.stderr.flush()
    time.sleep(rule.get("linger", 0))
    sys.exit(rule.get("exit", 0))
sys.exit(0)
'''


@pytest.fixture(scope="module")
def sysbin(tmp_path_factory):
    """Links to every program in /usr/bin and /bin except the real docker,
    docker-compose and kubectl."""
    d = tmp_path_factory.mktemp("sysbin")
    for src in ("/usr/bin", "/bin"):
        for entry in os.scandir(src):
            if entry.name in REAL_TOOLS or (d / entry.name).exists():
                continue
            try:
                (d / entry.name).symlink_to(entry.path)
            except OSError:
                pass
    return d


class Fakes:
    """A directory of fake executables with their rules and their call log."""

    def __init__(self, root, sysbin):
        self.dir = root / "fakebin"
        self.dir.mkdir()
        self.sysbin = sysbin
        self.rules = []

    def add(self, prog):
        path = self.dir / prog
        path.write_text(FAKE % {"prog": prog})
        path.chmod(0o755)

    def rule(self, prog, has=(), stdout="", stderr="", exit=0, linger=0, not_=()):
        self.rules.append(
            {"prog": prog, "has": list(has), "not": list(not_), "stdout": stdout,
             "stderr": stderr, "exit": exit, "linger": linger}
        )

    def env(self, **extra):
        (self.dir / "rules.json").write_text(json.dumps(self.rules))
        env = {
            "PATH": f"{self.dir}:{self.sysbin}",
            "FAKE_DIR": str(self.dir),
            "HOME": str(self.dir),
            "LANG": "C.UTF-8",
            "TMPDIR": str(self.dir),
            # monitor-workers.sh hands what it gathers to `stratq monitor`.
            "STRATQ_BIN": str(STRATQ_BIN),
        }
        env.update(extra)
        return env

    def calls(self, prog=None):
        log = self.dir / "calls.jsonl"
        if not log.exists():
            return []
        rows = [json.loads(line) for line in log.read_text().splitlines()]
        return [r for r in rows if prog is None or r["prog"] == prog]

    def argvs(self, prog):
        return [r["argv"] for r in self.calls(prog)]


def run(script, args, env, cwd=None, timeout=SCRIPT_TIMEOUT):
    return subprocess.run(
        [str(script), *map(str, args)], env=env, cwd=cwd, capture_output=True, text=True,
        timeout=timeout, stdin=subprocess.DEVNULL,
    )


def describe(res):
    return f"exit {res.returncode}\n--- stdout\n{res.stdout}\n--- stderr\n{res.stderr}"


def fake_root(tmp_path, compose_text=None):
    """A copy of the scripts in a tree of their own, with a Compose file and
    the dev tokens file, so the dev tests do not depend on config/dev."""
    root = tmp_path / "repo"
    (root / "scripts").mkdir(parents=True)
    for script in (SCALE, MONITOR):
        shutil.copy2(script, root / "scripts" / script.name)
    shutil.copytree(SCALE.parent / "lib", root / "scripts" / "lib")
    (root / "config" / "dev").mkdir(parents=True)
    (root / "config" / "dev" / "docker-compose.yaml").write_text(
        compose_text
        if compose_text is not None
        else "services:\n  worker:\n    image: stratq:dev\n    stop_grace_period: 40s\n"
    )
    (root / "config" / "dev" / "api-tokens.dev").write_text("# dev tokens\n\nfake-dev-token\n")
    return root


class CannedApi:
    """GET routes answered with canned JSON; records each request's path and
    Authorization header."""

    def __init__(self, routes):
        self.routes = routes
        self.requests = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                api.requests.append((self.path, self.headers.get("Authorization")))
                path = self.path.split("?")[0]
                if path not in api.routes:
                    self.send_response(404)
                    self.end_headers()
                    return
                body = json.dumps(api.routes[path]).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def canned_api():
    apis = []

    def make(routes):
        api = CannedApi(routes)
        apis.append(api)
        return api

    yield make
    for api in apis:
        api.close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return False


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what() if callable(what) else what}")
        time.sleep(0.1)


def jobs_page(waits, runs, t0=1_732_800_000_000):
    jobs = []
    for i, (w, r) in enumerate(zip(waits, runs)):
        created = t0 + i * 100_000
        jobs.append({"id": f"job{i}", "status": "succeeded", "attempts": 1,
                     "created_ms": created, "started_ms": created + int(w * 1000),
                     "finished_ms": created + int(w * 1000) + int(r * 1000), "worker": "w"})
    # A job the API lists without a start (never happens for succeeded, but
    # the monitor must skip incomplete records rather than fail).
    jobs.append({"id": "odd", "status": "succeeded", "created_ms": t0, "started_ms": None, "finished_ms": None})
    return {"jobs": jobs, "next_cursor": None}


def worker(wid, host, pid, state, job=None):
    now = int(time.time() * 1000)
    return {"id": wid, "host": host, "pid": pid, "version": "0.1.0", "state": state,
            "current_job": job, "jobs_done": 10, "jobs_failed": 1,
            "started_ms": now - 60_000, "last_heartbeat_ms": now - 1000}


def parse_report(res):
    try:
        return json.loads(res.stdout)
    except ValueError as e:
        raise AssertionError(f"stdout is not one JSON document ({e})\n{describe(res)}") from None


REPORT_KEYS = {"env", "time", "time_ms", "api_url", "queue", "workers", "jobs", "resources",
               "hpa", "events", "advice", "errors"}
ADVICE_KEYS = {"action", "wanted", "reasons", "workers", "suggested_workers", "command", "note"}


# --------------------------------------------------------------------------
# Both scripts: shellcheck, --help, argument errors
# --------------------------------------------------------------------------


@pytest.mark.parametrize("script", [SCALE, MONITOR], ids=lambda p: p.name)
def test_shellcheck_passes(script):
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is not installed (scripts/deps.sh installs it)"
    res = subprocess.run([shellcheck, "-x", str(script)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, describe(res)
    assert os.access(script, os.X_OK), f"{script} is not executable"


@pytest.mark.parametrize("script", [SCALE, MONITOR], ids=lambda p: p.name)
def test_help(script, tmp_path, sysbin):
    env = Fakes(tmp_path, sysbin).env()
    for flag in ("--help", "-h"):
        res = run(script, [flag], env)
        assert res.returncode == 0, describe(res)
        assert res.stdout.startswith(f"Usage: scripts/{script.name} ENV"), describe(res)
        for word in ("local", "dev", "stage", "prod"):
            assert word in res.stdout, (word, res.stdout)
    assert "--force" in run(SCALE, ["--help"], env).stdout
    assert "--pin" in run(SCALE, ["--help"], env).stdout
    text = run(MONITOR, ["--help"], env).stdout
    for word in ("--once", "--json", "above 5", "30 s", "80%", "30%"):
        assert word in text, (word, text)


@pytest.mark.parametrize(
    "args, words",
    [
        ([], ["missing ENV"]),
        (["qa", "3"], ["unknown environment 'qa'", "local, dev, stage or prod"]),
        (["dev"], ["missing N"]),
        (["dev", "three"], ["whole number", "'three'"]),
        (["dev", "-3"], ["unknown option '-3'"]),
        (["dev", "1"], ["2-10", "--force"]),
        (["stage", "11"], ["2-10", "--force"]),
        (["prod", "0"], ["2-10", "--force"]),
        (["dev", "3", "4"], ["too many arguments"]),
        (["dev", "3", "--bogus"], ["unknown option '--bogus'"]),
        (["dev", "3", "--pin"], ["--pin applies to stage and prod"]),
        (["local", "3", "--timeout", "soon"], ["--timeout"]),
        (["local", "3", "--state-dir"], ["--state-dir needs a value"]),
    ],
)
def test_scale_refuses_bad_arguments(args, words, tmp_path, sysbin):
    fakes = Fakes(tmp_path, sysbin)
    for prog in REAL_TOOLS:
        fakes.add(prog)
    res = run(SCALE, args, fakes.env())
    assert res.returncode == 2, describe(res)
    for word in words:
        assert word in res.stderr, (word, describe(res))
    assert "--help" in res.stderr, describe(res)
    assert fakes.calls() == [], "nothing may run on bad arguments"


@pytest.mark.parametrize(
    "args, words",
    [
        ([], ["missing ENV"]),
        (["qa"], ["unknown environment 'qa'"]),
        (["dev", "stage"], ["too many arguments"]),
        (["dev", "--interval", "0"], ["--interval"]),
        (["dev", "--jobs", "501"], ["1 to 500"]),
        (["dev", "--window", "x"], ["--window"]),
        (["dev", "--api-service", "a b"], ["NAME:PORT"]),
        (["dev", "--once=yes"], ["unknown option '--once'"]),
    ],
)
def test_monitor_refuses_bad_arguments(args, words, tmp_path, sysbin):
    fakes = Fakes(tmp_path, sysbin)
    for prog in REAL_TOOLS:
        fakes.add(prog)
    res = run(MONITOR, args, fakes.env())
    assert res.returncode == 2, describe(res)
    for word in words:
        assert word in res.stderr, (word, describe(res))
    assert fakes.calls() == []


def test_scale_bounds_are_the_advice_modules():
    """scale-workers.sh refuses counts outside the guide's 2-10 itself (it
    runs without a built stratq); its copy of the bounds is the one in
    src/common/advice.h, which the monitor's advice uses."""
    header = (REPO / "src" / "common" / "advice.h").read_text()
    bounds = dict(re.findall(r"^#define ADVICE_(MIN|MAX)_WORKERS (\d+)$", header, re.M))
    assert set(bounds) == {"MIN", "MAX"}, header
    script = SCALE.read_text()
    for name, value in bounds.items():
        assert re.search(rf"^{name}_WORKERS={value}\b", script, re.M), (name, value)


# --------------------------------------------------------------------------
# scale-workers.sh dev
# --------------------------------------------------------------------------

COMPOSE_V2 = "Docker Compose version v2.27.0\n"
NO_COMPOSE = "docker: 'compose' is not a docker command.\nSee 'docker --help'\n"


def test_scale_dev_with_compose_v2(tmp_path, sysbin):
    root = fake_root(tmp_path)
    fakes = Fakes(tmp_path, sysbin)
    fakes.add("docker")
    fakes.add("docker-compose")
    fakes.rule("docker", ["compose", "version"], stdout=COMPOSE_V2)
    res = run(root / "scripts" / "scale-workers.sh", ["dev", "5"], fakes.env(), cwd=tmp_path)
    assert res.returncode == 0, describe(res)
    f = "config/dev/docker-compose.yaml"
    assert fakes.argvs("docker") == [
        ["compose", "version"],
        ["compose", "-f", f, "up", "-d", "--scale", "worker=5"],
        ["compose", "-f", f, "ps", "worker"],
    ]
    assert fakes.argvs("docker-compose") == [], "v1 must not be used when v2 works"
    assert "warning" not in res.stderr, describe(res)


def test_scale_dev_falls_back_to_docker_compose_v1(tmp_path, sysbin):
    root = fake_root(tmp_path)
    fakes = Fakes(tmp_path, sysbin)
    fakes.add("docker")
    fakes.add("docker-compose")
    fakes.rule("docker", ["compose"], stderr=NO_COMPOSE, exit=1)
    res = run(root / "scripts" / "scale-workers.sh", ["dev", "2"], fakes.env(), cwd=tmp_path)
    assert res.returncode == 0, describe(res)
    f = "config/dev/docker-compose.yaml"
    assert fakes.argvs("docker-compose") == [
        ["--compatibility", "-f", f, "up", "-d", "--scale", "worker=2"],
        ["--compatibility", "-f", f, "ps", "worker"],
    ]
    assert fakes.argvs("docker") == [["compose", "version"]]


def test_scale_dev_without_compose_says_what_to_install(tmp_path, sysbin):
    root = fake_root(tmp_path)
    fakes = Fakes(tmp_path, sysbin)
    fakes.add("docker")
    fakes.rule("docker", ["compose"], stderr=NO_COMPOSE, exit=1)
    res = run(root / "scripts" / "scale-workers.sh", ["dev", "3"], fakes.env())
    assert res.returncode == 1, describe(res)
    assert "docker-compose-plugin" in res.stderr and "neither" in res.stderr, describe(res)


def test_scale_dev_reports_a_failed_compose_up(tmp_path, sysbin):
    root = fake_root(tmp_path)
    fakes = Fakes(tmp_path, sysbin)
    fakes.add("docker")
    fakes.rule("docker", ["compose", "version"], stdout=COMPOSE_V2)
    fakes.rule("docker", ["up"], stderr="Cannot connect to the Docker daemon at unix:///var/run/docker.sock\n", exit=1)
    res = run(root / "scripts" / "scale-workers.sh", ["dev", "4"], fakes.env())
    assert res.returncode == 1, describe(res)
    assert "docker info" in res.stderr, describe(res)


def test_scale_dev_warns_when_compose_would_cut_the_drain_short(tmp_path, sysbin):
    root = fake_root(tmp_path, compose_text="services:\n  worker:\n    image: stratq:dev\n")
    fakes = Fakes(tmp_path, sysbin)
    fakes.add("docker")
    fakes.rule("docker", ["compose", "version"], stdout=COMPOSE_V2)
    res = run(root / "scripts" / "scale-workers.sh", ["dev", "3"], fakes.env())
    assert res.returncode == 0, describe(res)
    assert "stop_grace_period" in res.stderr, describe(res)


def test_scale_dev_missing_compose_file(tmp_path, sysbin):
    root = fake_root(tmp_path)
    (root / "config" / "dev" / "docker-compose.yaml").unlink()
    fakes = Fakes(tmp_path, sysbin)
    fakes.add("docker")
    res = run(root / "scripts" / "scale-workers.sh", ["dev", "3"], fakes.env())
    assert res.returncode == 1, describe(res)
    assert "--compose-file" in res.stderr, describe(res)


def test_scale_dev_force_allows_more_than_ten(tmp_path, sysbin):
    root = fake_root(tmp_path)
    fakes = Fakes(tmp_path, sysbin)
    fakes.add("docker")
    fakes.rule("docker", ["compose", "version"], stdout=COMPOSE_V2)
    res = run(root / "scripts" / "scale-workers.sh", ["dev", "12", "--force"], fakes.env())
    assert res.returncode == 0, describe(res)
    assert ["compose", "-f", "config/dev/docker-compose.yaml", "up", "-d", "--scale", "worker=12"] in fakes.argvs("docker")


@pytest.mark.skipif(not (REPO / "config" / "dev" / "docker-compose.yaml").exists(), reason="no config/dev yet")
def test_scale_dev_with_the_repositorys_compose_file(tmp_path, sysbin):
    """The real file: found from any working directory, and it gives a
    stopping worker time to drain (no warning)."""
    fakes = Fakes(tmp_path, sysbin)
    fakes.add("docker")
    fakes.rule("docker", ["compose", "version"], stdout=COMPOSE_V2)
    res = run(SCALE, ["dev", "3"], fakes.env(), cwd=tmp_path)
    assert res.returncode == 0, describe(res)
    assert ["compose", "-f", "config/dev/docker-compose.yaml", "up", "-d", "--scale", "worker=3"] in fakes.argvs("docker")
    assert "warning" not in res.stderr, describe(res)


# --------------------------------------------------------------------------
# scale-workers.sh stage / prod
# --------------------------------------------------------------------------


def hpa_list(*hpas):
    """`kubectl get hpa -o json`: the namespace's HPAs, with one for another
    deployment that the scripts must ignore."""
    other = json.loads(hpa_json())
    other["metadata"]["name"] = "api-hpa"
    other["spec"]["scaleTargetRef"]["name"] = "api"
    other["spec"]["minReplicas"] = 7
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": [other, *map(json.loads, hpas)]})


NO_HPA = json.dumps({"apiVersion": "v1", "kind": "List", "items": []})


def hpa_json(min_r=2, max_r=10, current=3, desired=3, cpu=None, mem=None, name="worker-hpa", keda=None):
    metrics = []
    if cpu is not None:
        metrics.append({"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": cpu}}})
    if mem is not None:
        metrics.append({"type": "Resource", "resource": {"name": "memory", "current": {"averageUtilization": mem}}})
    return json.dumps({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": "stage",
                     "ownerReferences": [{"kind": "ScaledObject", "name": keda}] if keda else []},
        "spec": {"minReplicas": min_r, "maxReplicas": max_r,
                 "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "worker"},
                 "metrics": [
                     {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}},
                     {"type": "Resource", "resource": {"name": "memory", "target": {"type": "Utilization", "averageUtilization": 80}}}]},
        "status": {"currentReplicas": current, "desiredReplicas": desired, "currentMetrics": metrics,
                   "lastScaleTime": "2025-11-28T23:00:00Z",
                   "conditions": [{"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale", "message": "ok"}]},
    })




@pytest.mark.parametrize("env_name", ["stage", "prod"])
def test_scale_k8s_warns_that_the_hpa_overrides(env_name, tmp_path, sysbin):
    fakes = Fakes(tmp_path, sysbin)
    fakes.add("kubectl")
    fakes.rule("kubectl", ["get", "hpa"], stdout=hpa_list(hpa_json()))
    res = run(SCALE, [env_name, "4"], fakes.env())
    assert res.returncode == 0, describe(res)
    ns, ctx = ["-n", env_name], f"--context=minikube-{env_name}"
    assert fakes.argvs("kubectl") == [
        [*ns, ctx, "get", "hpa", "-o", "json"],
        ["scale", "deployment", "worker", "--replicas=4", *ns, ctx],
        ["rollout", "status", "deployment/worker", *ns, ctx, "--timeout=120s"],
    ]
    assert "worker-hpa" in res.stderr and "(min 2, max 10)" in res.stderr, describe(res)
    assert f"scripts/scale-workers.sh {env_name} 4 --pin" in res.stderr, describe(res)


def test_scale_k8s_outside_the_hpa_range_says_it_will_be_set_back(tmp_path, sysbin):
    fakes = Fakes(tmp_path, sysbin)
    fakes.add("kubectl")
    fakes.rule("kubectl", ["get", "hpa"], stdout=hpa_list(hpa_json(min_r=3, max_r=6)))
    res = run(SCALE, ["prod", "8", "--no-wait"], fakes.env())
    assert res.returncode == 0, describe(res)
    assert ["scale", "deployment", "worker", "--replicas=8", "-n", "prod", "--context=minikube-prod"] in fakes.argvs("kubectl")
    assert not any("rollout" in a for a in fakes.argvs("kubectl")), "--no-wait must not wait"
    assert "between 3 and 6" in res.stderr and "--pin" in res.stderr, describe(res)


def test_scale_k8s_without_an_hpa_does_not_warn(tmp_path, sysbin):
    fakes = Fakes(tmp_path, sysbin)
    fakes.add("kubectl")
    fakes.rule("kubectl", ["get", "hpa"], stdout=NO_HPA)
    res = run(SCALE, ["stage", "3", "--context", "kind-stage", "--namespace", "jobs"], fakes.env())
    assert res.returncode == 0, describe(res)
    assert ["scale", "deployment", "worker", "--replicas=3", "-n", "jobs", "--context=kind-stage"] in fakes.argvs("kubectl")
    assert "warning" not in res.stderr, describe(res)


@pytest.mark.parametrize("env_name", ["stage", "prod"])
def test_scale_k8s_pin_patches_the_hpa(env_name, tmp_path, sysbin):
    fakes = Fakes(tmp_path, sysbin)
    fakes.add("kubectl")
    fakes.rule("kubectl", ["get", "hpa"], stdout=hpa_list(hpa_json()))
    res = run(SCALE, [env_name, "8", "--pin"], fakes.env())
    assert res.returncode == 0, describe(res)
    ctx = f"--context=minikube-{env_name}"
    patch = [a for a in fakes.argvs("kubectl") if a[0] == "patch"]
    assert patch == [["patch", "hpa", "worker-hpa", "-n", env_name, ctx, "--type=merge",
                      "-p", '{"spec":{"minReplicas":8,"maxReplicas":8}}']], fakes.argvs("kubectl")
    assert not any(a[0] == "scale" for a in fakes.argvs("kubectl")), "--pin patches the HPA instead of scaling"
    assert "minReplicas\":2" in res.stdout, f"the way back to autoscaling is printed\n{describe(res)}"


def test_scale_k8s_under_keda_warns_and_pins_through_the_scaledobject(tmp_path, sysbin):
    """Under KEDA (docs/scaling.md) the HPA is KEDA's, which reverts patches to
    it: the warning names KEDA and --pin uses its paused-replicas annotation."""
    fakes = Fakes(tmp_path, sysbin)
    fakes.add("kubectl")
    fakes.rule("kubectl", ["get", "hpa"], stdout=hpa_list(hpa_json(name="keda-hpa-worker", keda="worker", max_r=20)))
    res = run(SCALE, ["prod", "5", "--no-wait"], fakes.env())
    assert res.returncode == 0, describe(res)
    assert "KEDA (ScaledObject worker, through the HPA keda-hpa-worker)" in res.stderr, describe(res)
    res = run(SCALE, ["prod", "5", "--pin"], fakes.env())
    assert res.returncode == 0, describe(res)
    assert ["annotate", "scaledobject", "worker", "autoscaling.keda.sh/paused-replicas=5", "--overwrite",
            "-n", "prod", "--context=minikube-prod"] in fakes.argvs("kubectl"), fakes.argvs("kubectl")
    assert not any(a[0] == "patch" for a in fakes.argvs("kubectl"))
    assert "paused-replicas-" in res.stdout, describe(res)


def test_scale_k8s_pin_without_an_hpa_fails(tmp_path, sysbin):
    fakes = Fakes(tmp_path, sysbin)
    fakes.add("kubectl")
    fakes.rule("kubectl", ["get", "hpa"], stdout=NO_HPA)
    res = run(SCALE, ["stage", "4", "--pin"], fakes.env())
    assert res.returncode == 1, describe(res)
    assert "has none" in res.stderr and "kubectl apply -k config/deploy/k8s/overlays/stage" in res.stderr, describe(res)
    assert [a[0] for a in fakes.argvs("kubectl")] == ["-n"], "nothing is changed"


def test_scale_k8s_unreachable_cluster(tmp_path, sysbin):
    fakes = Fakes(tmp_path, sysbin)
    fakes.add("kubectl")
    fakes.rule("kubectl", ["get"], stderr="The connection to the server 192.0.2.1:8443 was refused\n", exit=1)
    res = run(SCALE, ["prod", "4"], fakes.env())
    assert res.returncode == 1, describe(res)
    assert "minikube-prod" in res.stderr and "kubectl config get-contexts" in res.stderr, describe(res)
    assert not any(a[0] == "scale" for a in fakes.argvs("kubectl"))


def test_scale_k8s_missing_deployment(tmp_path, sysbin):
    fakes = Fakes(tmp_path, sysbin)
    fakes.add("kubectl")
    fakes.rule("kubectl", ["get", "hpa"], stdout=NO_HPA)
    fakes.rule("kubectl", ["scale"], stderr='Error from server (NotFound): deployments.apps "worker" not found\n', exit=1)
    res = run(SCALE, ["stage", "4"], fakes.env())
    assert res.returncode == 1, describe(res)
    assert "kubectl apply -k config/deploy/k8s/overlays/stage" in res.stderr, describe(res)


# --------------------------------------------------------------------------
# scale-workers.sh local: failures that need no stack
# --------------------------------------------------------------------------


def test_scale_local_without_a_stack(tmp_path, sysbin):
    env = Fakes(tmp_path, sysbin).env()
    res = run(SCALE, ["local", "3", "--state-dir", tmp_path / "nowhere"], env)
    assert res.returncode == 1, describe(res)
    assert "up.json does not exist" in res.stderr and "stratq up" in res.stderr, describe(res)


def test_scale_local_refuses_a_pid_that_is_not_stratq_up(tmp_path, sysbin):
    """A stale up.json whose pid now belongs to another process: that process
    must not get a SIGHUP (which would kill it)."""
    state = tmp_path / "state"
    state.mkdir()
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        (state / "up.json").write_text(json.dumps({"pid": sleeper.pid, "api_url": "http://127.0.0.1:9", "workers": 2}))
        res = run(SCALE, ["local", "3", "--state-dir", state], Fakes(tmp_path, sysbin).env())
        assert res.returncode == 1, describe(res)
        assert "not a running 'stratq up'" in res.stderr, describe(res)
        assert sleeper.poll() is None, "the unrelated process was signalled"
        assert not (state / "workers").exists()
    finally:
        sleeper.kill()
        sleeper.wait(timeout=10)


def test_monitor_local_without_a_stack(tmp_path, sysbin):
    res = run(MONITOR, ["local", "--once", "--state-dir", tmp_path / "nowhere"], Fakes(tmp_path, sysbin).env())
    assert res.returncode == 1, describe(res)
    assert "up.json does not exist" in res.stderr and "build/stratq up" in res.stderr, describe(res)


# --------------------------------------------------------------------------
# monitor-workers.sh dev
# --------------------------------------------------------------------------

DEV_IDS = ["aaaaaaaaaaaa1111", "bbbbbbbbbbbb2222", "cccccccccccc3333"]


def docker_stats(rows):
    return "".join(
        json.dumps({"ID": i[:12], "Name": f"dev-worker-{n}", "CPUPerc": f"{cpu:.2f}%",
                    "MemUsage": f"{mem}MiB / 1GiB", "MemPerc": f"{mem / 1024 * 100:.2f}%",
                    "NetIO": "0B / 0B", "BlockIO": "0B / 0B", "PIDs": "5"}) + "\n"
        for n, (i, cpu, mem) in enumerate(rows, 1)
    )


def dev_fakes(tmp_path, sysbin, api_port, stats_rows, v2=True):
    fakes = Fakes(tmp_path, sysbin)
    fakes.add("docker")
    if v2:
        fakes.rule("docker", ["compose", "version"], stdout=COMPOSE_V2)
    else:
        fakes.add("docker-compose")
        fakes.rule("docker", ["compose"], stderr=NO_COMPOSE, exit=1)
    for prog, lead in (("docker", ["compose"]), ("docker-compose", [])):
        fakes.rule(prog, [*lead, "port", "api", "8080"], stdout=f"0.0.0.0:{api_port}\n")
        fakes.rule(prog, [*lead, "ps", "-q", "worker"], stdout="".join(i + "\n" for i in DEV_IDS))
    fakes.rule("docker", ["stats", "--no-stream"], stdout=docker_stats(stats_rows))
    now = int(time.time())
    events = [
        {"status": "start", "Action": "start", "Type": "container", "id": DEV_IDS[2],
         "Actor": {"ID": DEV_IDS[2], "Attributes": {"name": "dev-worker-3", "image": "stratq:dev"}}, "time": now - 60},
        {"status": "exec_start", "Action": "exec_start: python3", "Type": "container", "id": DEV_IDS[0],
         "Actor": {"ID": DEV_IDS[0], "Attributes": {"name": "dev-worker-1"}}, "time": now - 30},
    ]
    fakes.rule("docker", ["events"], stdout="".join(json.dumps(e) + "\n" for e in events))
    return fakes


def dev_routes(pending, states, waits, runs, ids=DEV_IDS):
    return {
        "/v1/queue": {"queue": "python_execution_queue", "pending": pending, "processing": 2, "scheduled": 1, "dead": 4,
                      "workers": len(states)},
        "/v1/workers": {"workers": [worker(f"w{n}", ids[n][:12], 7, s, "j" if s == "busy" else None)
                                    for n, s in enumerate(states)]},
        "/v1/jobs": jobs_page(waits, runs),
    }


@pytest.mark.parametrize("v2", [True, False], ids=["compose-v2", "compose-v1"])
def test_monitor_dev_once_json(v2, tmp_path, sysbin, canned_api):
    api = canned_api(dev_routes(12, ["busy", "busy", "idle"], waits=range(1, 21), runs=[i / 2 for i in range(1, 21)]))
    root = fake_root(tmp_path)
    fakes = dev_fakes(tmp_path, sysbin, api.port, [(DEV_IDS[0], 95.0, 512), (DEV_IDS[1], 90.0, 410), (DEV_IDS[2], 10.0, 102)], v2=v2)
    res = run(root / "scripts" / "monitor-workers.sh", ["dev", "--once", "--json"], fakes.env(), cwd=tmp_path)
    assert res.returncode == 0, describe(res)
    r = parse_report(res)
    assert set(r) == REPORT_KEYS, sorted(r)
    assert r["env"] == "dev" and r["api_url"] == f"http://127.0.0.1:{api.port}"
    assert r["errors"] == []
    assert r["queue"] == {"name": "python_execution_queue", "pending": 12, "processing": 2, "scheduled": 1, "dead": 4}
    assert r["workers"]["count"] == 3 and r["workers"]["by_state"] == {"busy": 2, "idle": 1}
    by_id = {w["id"]: w for w in r["workers"]["list"]}
    assert by_id["w0"]["cpu_percent"] == 95.0 and by_id["w0"]["memory_bytes"] == 512 * 1048576, by_id
    assert by_id["w2"]["state"] == "idle" and by_id["w2"]["memory_percent"] == 10.0
    # Nearest-rank percentiles of waits 1..20 s and runs 0.5..10 s.
    assert r["jobs"]["sample"] == 20
    assert r["jobs"]["wait_s"] == {"p50": 10, "p95": 19, "mean": 10.5}
    assert r["jobs"]["run_s"] == {"p50": 5, "p95": 9.5, "mean": 5.3}
    assert r["resources"]["source"] == "docker stats"
    assert r["resources"]["cpu_percent_avg"] == 65.0
    assert r["hpa"] is None
    assert [e["reason"] for e in r["events"]] == ["start"] and r["events"][0]["object"] == "container/dev-worker-3"
    a = r["advice"]
    assert set(a) == ADVICE_KEYS
    assert a["action"] == "scale_up" and a["workers"] == 3
    # One more worker per 5 jobs above 5 pending: 3 + ceil(7 / 5) = 5.
    assert a["suggested_workers"] == 5 and a["command"] == "scripts/scale-workers.sh dev 5", a
    assert a["reasons"] == ["queue length 12 > 5 now"], a
    # The dev token file's token was sent (no STRATQ_API_TOKEN set).
    assert api.requests and all(h == "Bearer fake-dev-token" for _, h in api.requests), api.requests
    assert ("/v1/jobs?status=succeeded&limit=100", "Bearer fake-dev-token") in api.requests
    compose = ["compose"] if v2 else ["--compatibility"]
    prog = "docker" if v2 else "docker-compose"
    assert [*compose, "-f", "config/dev/docker-compose.yaml", "port", "api", "8080"] in fakes.argvs(prog)
    stats = [a for a in fakes.argvs("docker") if a[0] == "stats"]
    assert stats == [["stats", "--no-stream", "--format", "{{json .}}", *DEV_IDS]], stats


@pytest.mark.parametrize(
    "pending, states, cpus, waits, action, suggested, reason",
    [
        # Long waits alone: one more worker.
        (2, ["busy", "busy", "busy"], [50, 50, 50], [40] * 5, "scale_up", 4, "average wait 40 s > 30 s"),
        # CPU above 80%.
        (0, ["busy", "busy", "busy"], [85, 90, 88], [1] * 5, "scale_up", 4, "CPU utilisation 87.7% > 80%"),
        # Idle: queue at 0, CPU and memory under 30%.
        (0, ["idle", "idle", "idle"], [1, 2, 3], [1] * 5, "scale_down", 2, "queue at 0 now"),
        # Between the bounds: hold.
        (3, ["busy", "idle", "idle"], [50, 10, 10], [1] * 5, "hold", 3, "within the guide's bounds"),
        # Already at the maximum: hold, with a note.
        (40, ["busy"] * 10, [99] * 10, [100] * 5, "hold", 10, "queue length 40 > 5 now"),
    ],
)
def test_monitor_dev_advice(pending, states, cpus, waits, action, suggested, reason, tmp_path, sysbin, canned_api):
    ids = [f"{n:012x}" for n in range(len(states))]
    routes = dev_routes(pending, states, waits=waits, runs=[1] * len(waits), ids=ids)
    api = canned_api(routes)
    root = fake_root(tmp_path)
    fakes = Fakes(tmp_path, sysbin)
    fakes.add("docker")
    fakes.rule("docker", ["compose", "version"], stdout=COMPOSE_V2)
    fakes.rule("docker", ["port"], stdout=f"127.0.0.1:{api.port}\n")
    fakes.rule("docker", ["ps", "-q"], stdout="".join(i + "\n" for i in ids))
    fakes.rule("docker", ["stats"], stdout=docker_stats([(i, c, 100) for i, c in zip(ids, cpus)]))
    res = run(root / "scripts" / "monitor-workers.sh", ["dev", "--once", "--json"], fakes.env(STRATQ_API_TOKEN="t0k"))
    assert res.returncode == 0, describe(res)
    a = parse_report(res)["advice"]
    assert a["action"] == action and a["suggested_workers"] == suggested, a
    assert any(reason in x for x in a["reasons"]), a
    if action == "hold":
        assert a["command"] is None
    else:
        assert a["command"] == f"scripts/scale-workers.sh dev {suggested}"
    if len(states) == 10:
        assert a["wanted"] == "scale_up" and "maximum of 10" in a["note"], a
    assert all(h == "Bearer t0k" for _, h in api.requests), "STRATQ_API_TOKEN wins over the dev token file"


def test_monitor_dev_at_the_minimum_holds(tmp_path, sysbin, canned_api):
    ids = ["000000000001", "000000000002"]
    routes = dev_routes(0, ["idle", "idle"], waits=[1], runs=[1], ids=ids)
    api = canned_api(routes)
    root = fake_root(tmp_path)
    fakes = Fakes(tmp_path, sysbin)
    fakes.add("docker")
    fakes.rule("docker", ["compose", "version"], stdout=COMPOSE_V2)
    fakes.rule("docker", ["ps", "-q"], stdout="".join(i + "\n" for i in ids))
    fakes.rule("docker", ["stats"], stdout=docker_stats([(i, 1.0, 50) for i in ids]))
    res = run(root / "scripts" / "monitor-workers.sh",
              ["dev", "--once", "--json", "--api-url", f"http://127.0.0.1:{api.port}"], fakes.env())
    assert res.returncode == 0, describe(res)
    a = parse_report(res)["advice"]
    assert a["action"] == "hold" and a["wanted"] == "scale_down" and "minimum of 2" in a["note"], a
    assert not any("port" in x for x in fakes.argvs("docker")), "--api-url skips the port lookup"


def test_monitor_dev_text_once(tmp_path, sysbin, canned_api):
    api = canned_api(dev_routes(12, ["busy", "busy", "idle"], waits=range(1, 21), runs=[1] * 20))
    root = fake_root(tmp_path)
    fakes = dev_fakes(tmp_path, sysbin, api.port, [(DEV_IDS[0], 95.0, 512), (DEV_IDS[1], 90.0, 410), (DEV_IDS[2], 10.0, 102)])
    res = run(root / "scripts" / "monitor-workers.sh", ["dev", "--once"], fakes.env())
    assert res.returncode == 0, describe(res)
    out = res.stdout
    for text in ("queue     pending 12  processing 2  scheduled 1  dead 4", "workers   3 live (busy 2, idle 1)",
                 "wait p50 10 s, p95 19 s", "docker stats", "advice    SCALE UP to 5 workers: queue length 12 > 5 now",
                 "run: scripts/scale-workers.sh dev 5", "dev-worker-3"):
        assert text in out, (text, out)


def test_monitor_dev_api_down_exits_1_with_what_to_do(tmp_path, sysbin):
    root = fake_root(tmp_path)
    fakes = dev_fakes(tmp_path, sysbin, free_port(), [(DEV_IDS[0], 5.0, 100)])
    res = run(root / "scripts" / "monitor-workers.sh", ["dev", "--once", "--json"], fakes.env())
    assert res.returncode == 1, describe(res)
    r = parse_report(res)
    assert r["queue"] is None and r["workers"] is None and r["jobs"] is None
    assert r["errors"] and "cannot reach the stratq API" in r["errors"][0], r["errors"]
    assert "up -d" in res.stderr, describe(res)
    assert r["advice"]["action"] == "hold" and r["advice"]["reasons"] == ["queue length unknown"]


def test_monitor_dev_stack_not_running(tmp_path, sysbin):
    root = fake_root(tmp_path)
    fakes = Fakes(tmp_path, sysbin)
    fakes.add("docker")
    fakes.rule("docker", ["compose", "version"], stdout=COMPOSE_V2)
    fakes.rule("docker", ["port"], stderr="no container found for api_1\n", exit=1)
    res = run(root / "scripts" / "monitor-workers.sh", ["dev", "--once"], fakes.env())
    assert res.returncode == 1, describe(res)
    assert "start the dev stack" in res.stderr and "--api-url" in res.stderr, describe(res)


def test_monitor_watch_mode_repeats_and_needs_the_queue_to_stay_high(tmp_path, sysbin, canned_api):
    """Without --once the report repeats; a queue above 5 counts only when it
    stayed there for the whole window."""
    api = canned_api(dev_routes(9, ["busy", "busy", "busy"], waits=[1], runs=[1]))
    root = fake_root(tmp_path)
    fakes = dev_fakes(tmp_path, sysbin, api.port, [(i, 50.0, 100) for i in DEV_IDS])
    proc = subprocess.Popen(
        [str(root / "scripts" / "monitor-workers.sh"), "dev", "--json", "--interval", "1", "--window", "2"],
        env=fakes.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        lines = []
        deadline = time.monotonic() + 30
        while len(lines) < 2 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(json.loads(line))
            if len(lines) == 1:
                # The queue drops below 5 for the second sample.
                api.routes["/v1/queue"] = dict(api.routes["/v1/queue"], pending=2)
        assert len(lines) == 2, f"two reports within 30 s: {lines}"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    first, second = lines
    assert first["advice"]["action"] == "scale_up" and first["advice"]["reasons"] == ["queue length 9 > 5 now"], first
    assert second["queue"]["pending"] == 2 and second["advice"]["action"] == "hold", second["advice"]


# --------------------------------------------------------------------------
# monitor-workers.sh stage / prod
# --------------------------------------------------------------------------

DEPLOYMENT = {
    "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "worker"},
    "spec": {"replicas": 3, "template": {"spec": {"containers": [
        {"name": "worker", "image": "ghcr.io/x/stratq",
         "resources": {"requests": {"cpu": "1000m", "memory": "512Mi"}, "limits": {"cpu": "2", "memory": "2Gi"}}}]}}},
}

K8S_EVENTS = {"items": [
    {"involvedObject": {"kind": "HorizontalPodAutoscaler", "name": "worker-hpa"}, "reason": "SuccessfulRescale",
     "message": "New size: 3; reason: cpu resource utilization (percentage of request) above target",
     "lastTimestamp": "2025-11-28T23:00:00Z", "type": "Normal"},
    {"involvedObject": {"kind": "Deployment", "name": "worker"}, "reason": "ScalingReplicaSet",
     "message": "Scaled up replica set worker-7d9c to 3", "lastTimestamp": "2025-11-28T23:00:01Z"},
    {"involvedObject": {"kind": "ReplicaSet", "name": "worker-7d9c"}, "reason": "SuccessfulCreate",
     "message": "Created pod: worker-c", "lastTimestamp": "2025-11-28T23:00:02Z"},
    {"involvedObject": {"kind": "Pod", "name": "api-5f6"}, "reason": "Pulled", "message": "unrelated",
     "lastTimestamp": "2025-11-28T23:00:03Z"},
]}


def k8s_fakes(tmp_path, sysbin, api_port, hpa=True, top=True):
    fakes = Fakes(tmp_path, sysbin)
    fakes.add("kubectl")
    if hpa:
        fakes.rule("kubectl", ["get", "hpa"], stdout=hpa_list(hpa_json(cpu=5, mem=20)))
    else:
        fakes.rule("kubectl", ["get", "hpa"], stdout=NO_HPA)
    fakes.rule("kubectl", ["get", "deployment"], stdout=json.dumps(DEPLOYMENT))
    if top:
        fakes.rule("kubectl", ["top", "pod"], stdout="worker-a   50m   100Mi\nworker-b   100m   102Mi\nworker-c   30m   50Mi\n")
    else:
        fakes.rule("kubectl", ["top", "pod"], stderr="error: Metrics API not available\n", exit=1)
    fakes.rule("kubectl", ["get", "events"], stdout=json.dumps(K8S_EVENTS))
    fakes.rule("kubectl", ["port-forward"],
               stdout=f"Forwarding from 127.0.0.1:{api_port} -> 8080\nForwarding from [::1]:{api_port} -> 8080\n", linger=60)
    return fakes


def k8s_routes(pending):
    return {
        "/v1/queue": {"queue": "python_execution_queue", "pending": pending, "processing": 0, "scheduled": 0, "dead": 0, "workers": 3},
        "/v1/workers": {"workers": [worker("w-a", "worker-a", 1, "idle"), worker("w-b", "worker-b", 1, "idle"),
                                    worker("w-c", "worker-c", 1, "idle"), worker("w-old", "worker-z", 1, "lost")]},
        "/v1/jobs": jobs_page([0.2, 0.4, 0.6], [1, 2, 3]),
    }


@pytest.mark.parametrize("env_name", ["stage", "prod"])
def test_monitor_k8s_once_json(env_name, tmp_path, sysbin, canned_api):
    api = canned_api(k8s_routes(0))
    fakes = k8s_fakes(tmp_path, sysbin, api.port)
    res = run(MONITOR, [env_name, "--once", "--json"], fakes.env(STRATQ_API_TOKEN="k8s-token"))
    assert res.returncode == 0, describe(res)
    r = parse_report(res)
    assert set(r) == REPORT_KEYS and r["errors"] == [], r
    assert r["api_url"] == f"http://127.0.0.1:{api.port}"
    assert r["queue"]["pending"] == 0
    assert r["workers"]["count"] == 3 and r["workers"]["by_state"] == {"idle": 3, "lost": 1}, "lost workers are not live"
    by_id = {w["id"]: w for w in r["workers"]["list"]}
    # Usage as a share of the requests (1000m CPU, 512Mi), as the HPA counts it.
    assert by_id["w-b"]["cpu_percent"] == 10.0 and by_id["w-b"]["memory_percent"] == pytest.approx(19.9, abs=0.05), by_id
    assert by_id["w-old"]["cpu_percent"] is None
    assert r["resources"]["source"] == "kubectl top" and r["resources"]["cpu_percent_avg"] == 6.0
    assert all(u["basis"] == "requests" for u in r["resources"]["units"])
    assert r["jobs"]["wait_s"] == {"p50": 0.4, "p95": 0.6, "mean": 0.4}
    h = r["hpa"]
    assert (h["name"], h["min"], h["max"], h["current"], h["desired"]) == ("worker-hpa", 2, 10, 3, 3)
    assert h["metrics"] == [{"name": "cpu", "target_percent": 70, "current_percent": 5},
                            {"name": "memory", "target_percent": 80, "current_percent": 20}]
    assert [e["reason"] for e in r["events"]] == ["SuccessfulRescale", "ScalingReplicaSet", "SuccessfulCreate"]
    a = r["advice"]
    assert a["action"] == "scale_down" and a["suggested_workers"] == 2, a
    assert a["command"] == f"scripts/scale-workers.sh {env_name} 2 --pin" and "worker-hpa" in a["note"], a
    ns, ctx = ["-n", env_name], f"--context=minikube-{env_name}"
    argvs = fakes.argvs("kubectl")
    for expected in ([*ns, ctx, "get", "hpa", "-o", "json"],
                     [*ns, ctx, "top", "pod", "-l", "app=worker", "--no-headers"],
                     [*ns, ctx, "get", "deployment", "worker", "-o", "json"],
                     [*ns, ctx, "get", "events", "-o", "json"],
                     ["port-forward", *ns, ctx, "svc/api", ":8080"]):
        assert expected in argvs, (expected, argvs)
    assert api.requests and all(h == "Bearer k8s-token" for _, h in api.requests), api.requests
    # The port-forward the script started is gone with it.
    pf = [c["pid"] for c in fakes.calls("kubectl") if c["argv"][0] == "port-forward"]
    assert len(pf) == 1
    wait_for(lambda: not pid_alive(pf[0]), 10, "the port-forward to stop")


def test_monitor_k8s_text_and_missing_metrics_server(tmp_path, sysbin, canned_api):
    api = canned_api(k8s_routes(7))
    fakes = k8s_fakes(tmp_path, sysbin, api.port, top=False)
    res = run(MONITOR, ["prod", "--once", "--api-url", f"http://127.0.0.1:{api.port}"], fakes.env())
    assert res.returncode == 1, describe(res)
    assert "metrics-server" in res.stderr and "minikube addons enable metrics-server -p minikube-prod" in res.stderr
    assert not any(a[0] == "port-forward" for a in fakes.argvs("kubectl")), "--api-url needs no port-forward"
    for text in ("hpa       worker-hpa: min 2, max 10, current 3, desired 3; cpu 5% of target 70%",
                 "SuccessfulRescale", "advice    SCALE UP to 4 workers: queue length 7 > 5 now",
                 "run: scripts/scale-workers.sh prod 4 --pin"):
        assert text in res.stdout, (text, res.stdout)


def test_monitor_k8s_port_forward_failure(tmp_path, sysbin):
    fakes = Fakes(tmp_path, sysbin)
    fakes.add("kubectl")
    fakes.rule("kubectl", ["port-forward"], stderr='Error from server (NotFound): services "api" not found\n', exit=1)
    res = run(MONITOR, ["stage", "--once"], fakes.env())
    assert res.returncode == 1, describe(res)
    assert "services \"api\" not found" in res.stderr and "--api-service" in res.stderr, describe(res)


# --------------------------------------------------------------------------
# The workflow
# --------------------------------------------------------------------------


def test_deploy_workflow():
    yaml = pytest.importorskip("yaml")
    wf = yaml.safe_load(WORKFLOW.read_text())
    # PyYAML reads the key `on` as the boolean True.
    on = wf.get("on", wf.get(True))
    assert set(on) == {"pull_request", "push", "workflow_dispatch"}, on
    assert on["push"]["branches"] == ["main"] and on["push"]["tags"] == ["v*"], on
    jobs = wf["jobs"]
    assert set(jobs) == {"test", "image", "deploy-stage", "deploy-prod"}, set(jobs)

    test = jobs["test"]
    assert "if" not in test, "tests run on every trigger, pull requests included"
    assert test["container"]["image"].startswith(("debian:", "ubuntu:"))
    assert any(s.get("run", "").strip() == "make test" for s in test["steps"]), test["steps"]

    image = jobs["image"]
    assert image["needs"] == "test" or image["needs"] == ["test"]
    assert "pull_request" in image["if"], "no image is pushed for a pull request"
    assert image["permissions"]["packages"] == "write"
    uses = [s.get("uses", "") for s in image["steps"]]
    assert any(u.startswith("docker/build-push-action@") for u in uses), uses
    login = next(s for s in image["steps"] if s.get("uses", "").startswith("docker/login-action@"))
    assert login["with"]["registry"] == "ghcr.io"
    push = next(s for s in image["steps"] if s.get("uses", "").startswith("docker/build-push-action@"))
    assert push["with"]["push"] is True

    def runs(job):
        return "\n".join(s.get("run", "") for s in job["steps"])

    stage = jobs["deploy-stage"]
    assert "image" in stage["needs"]
    assert "refs/heads/main" in stage["if"] and "push" in stage["if"], stage["if"]
    assert "kubectl apply -k config/deploy/k8s/overlays/stage" in runs(stage)
    assert "kubectl rollout status deployment/worker -n stage" in runs(stage)

    prod = jobs["deploy-prod"]
    assert "image" in prod["needs"]
    env = prod["environment"]
    assert (env["name"] if isinstance(env, dict) else env) == "production"
    assert "refs/tags/v" in prod["if"] and "workflow_dispatch" in prod["if"], prod["if"]
    assert "kubectl apply -k config/deploy/k8s/overlays/prod" in runs(prod)
    assert "kubectl rollout status deployment/worker -n prod" in runs(prod)
    # Secrets of the clusters are the environments' own.
    for job in (stage, prod):
        assert "KUBECONFIG" in json.dumps(job), job


# --------------------------------------------------------------------------
# local, for real: stratq up scaled 2 -> 3 -> 2 with jobs running
# --------------------------------------------------------------------------


def _up_has_scaling_hook():
    up_c = REPO / "src" / "cli" / "up.c"
    return up_c.exists() and "SIGHUP" in up_c.read_text()


class LocalApi:
    def __init__(self, url):
        self.url = url

    def call(self, method, path, body=None, timeout=70):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")
        except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
            return None, str(e)

    def live_workers(self):
        status, body = self.call("GET", "/v1/workers", timeout=5)
        if status != 200:
            return None
        return [w for w in body["workers"] if w["state"] != "lost"]


@pytest.mark.skipif(not _up_has_scaling_hook(), reason="waiting for up.c scaling hook")
@pytest.mark.skipif(not STRATQ_BIN.exists(), reason=f"{STRATQ_BIN} is not built (make build/stratq)")
@pytest.mark.skipif(not (shutil.which("redis-server") or Path("/usr/bin/redis-server").exists()),
                    reason="redis-server is not installed (scripts/deps.sh installs it)")
def test_scale_local_for_real(tmp_path):
    state = tmp_path / "state"
    port = free_port()
    log = open(tmp_path / "up.log", "w")
    up = subprocess.Popen([str(STRATQ_BIN), "up", "--workers", "2", "--state-dir", str(state), "--port", str(port)],
                          stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=tmp_path)
    api = LocalApi(f"http://127.0.0.1:{port}")

    def up_log():
        log.flush()
        return (tmp_path / "up.log").read_text()

    def scale(n):
        res = run(SCALE, ["local", str(n), "--state-dir", state], dict(os.environ), timeout=120)
        assert res.returncode == 0, f"{describe(res)}\n--- stratq up\n{up_log()}"
        assert f"done: {n} workers" in res.stdout, describe(res)
        return res

    try:
        up_json = state / "up.json"
        wait_for(lambda: up.poll() is None and up_json.exists() and len(api.live_workers() or []) == 2, 60,
                 lambda: f"stratq up with 2 workers\n{up_log()}")
        info = json.loads(up_json.read_text())
        assert info["pid"] == up.pid and info["api_url"] == f"http://127.0.0.1:{port}" and info["workers"] == 2, info

        code = "import time\ndef run(ctx):\n    time.sleep(ctx.params['s'])\n    return ctx.params['i']\n"
        ids = {}
        for i in range(16):
            status, body = api.call("POST", "/v1/jobs", {"code": code, "params": {"i": i, "s": 2}})
            assert status == 201, body
            ids[body["id"]] = i

        res = scale(3)
        assert "asked 'stratq up'" in res.stdout and "want 3" in res.stdout, describe(res)
        workers = api.live_workers()
        assert len(workers) == 3 and json.loads(up_json.read_text())["workers"] == 3, workers

        # The monitor reads the same stack: its API and /proc.
        mon = run(MONITOR, ["local", "--once", "--json", "--state-dir", state], dict(os.environ))
        assert mon.returncode == 0, describe(mon)
        report = parse_report(mon)
        assert report["workers"]["count"] == 3 and report["queue"]["name"] == "python_execution_queue", report
        assert report["resources"]["source"] == "/proc"
        pids = {w["pid"] for w in workers}
        assert {u["pid"] for u in report["resources"]["units"]} == pids, report["resources"]
        assert all(u["memory_bytes"] > 0 for u in report["resources"]["units"]), report["resources"]

        # Scale down while every worker runs a job: the surplus worker drains,
        # finishing its job before it stops.
        wait_for(lambda: sum(w["state"] == "busy" for w in api.live_workers() or []) == 3, 30,
                 lambda: f"3 busy workers: {api.live_workers()}")
        busy = {w["pid"]: (w["id"], w["current_job"]) for w in api.live_workers()}
        scale(2)
        after = api.live_workers()
        assert len(after) == 2 and {w["pid"] for w in after} < pids, (after, pids)
        (gone,) = set(busy) - {w["pid"] for w in after}
        drained_worker, drained_job = busy[gone]
        assert drained_job in ids, (busy, gone)
        assert "drained and stopped" in up_log()
        assert json.loads(up_json.read_text())["workers"] == 2

        # Every job ran to success exactly once: one attempt each, and the
        # succeeded counter counts each job once.
        for job_id, i in ids.items():
            deadline = time.monotonic() + 120
            while True:
                status, job = api.call("GET", f"/v1/jobs/{job_id}?wait=30")
                assert status == 200, job
                if job["status"] not in ("queued", "running", "scheduled") or time.monotonic() > deadline:
                    break
            assert job["status"] == "succeeded" and job["result"] == i, job
            assert job["attempts"] == 1, f"job {job_id} ran {job['attempts']} times\n{job}"
            if job_id == drained_job:
                assert job["worker"] == drained_worker, f"the draining worker finished its own job: {job}"
        def succeeded():
            with urllib.request.urlopen(api.url + "/metrics", timeout=10) as resp:
                text = resp.read().decode()
            return [float(line.split()[-1]) for line in text.splitlines()
                    if line.startswith('stratq_jobs_completed_total{status="succeeded"}')]

        # The workers add their counts once the queue runs dry (about a second).
        wait_for(lambda: succeeded() == [len(ids)], 15,
                 lambda: f"the succeeded counter to be {len(ids)}: {succeeded()}")
        status, queue = api.call("GET", "/v1/queue")
        assert queue["pending"] == 0 and queue["processing"] == 0 and queue["dead"] == 0, queue
    finally:
        if up.poll() is None:
            up.send_signal(signal.SIGTERM)
            try:
                up.wait(timeout=60)
            except subprocess.TimeoutExpired:
                up.kill()
                up.wait(timeout=10)
        log.close()
    assert up.returncode == 0, up_log()
    assert not (state / "up.json").exists(), "stratq up removes up.json when it stops"
