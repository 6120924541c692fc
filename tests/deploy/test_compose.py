"""The container deployment: Dockerfile, .dockerignore and the development
stack in config/dev/docker-compose.yaml (docs/deploy.md).

No Docker engine is needed: the compose file is validated by Debian's
docker-compose 1.29 (`config -q`, against the Compose Specification schema it
ships: unknown keys and wrong types fail), rendered by it (`config`), and
turned by that same docker-compose into the container settings it would send
to an engine. The Dockerfile is parsed, and its Debian package names are
looked up with apt-cache. The numbers are the worker scaling guide's, as
docs/deploy.md states them.
"""

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import DOCKERFILE, dockerfile, parse_dockerfile, runtime_env, runtime_user, stages

REPO = Path(__file__).resolve().parents[2]
COMPOSE_REL = "config/dev/docker-compose.yaml"
COMPOSE = REPO / COMPOSE_REL
DOCKERIGNORE = REPO / ".dockerignore"
DEPLOY_MD = REPO / "docs" / "deploy.md"

# The worker scaling guide, "Development Environment": 3 workers
# (`replicas: 3`), each with a 1GB memory limit and 1 CPU limit.
# test_guide_numbers checks these against docs/deploy.md, which states them.
DEV_WORKERS = 3
DEV_WORKER_MEMORY = 1024**3
DEV_WORKER_CPUS = 1.0
QUEUE = "python_execution_queue"
GiB = 1024**3


# --------------------------------------------------------------------------
# helpers


def load_compose():
    # safe_load resolves the file's YAML anchors and merge keys (<<), as both
    # Compose implementations do.
    return yaml.safe_load(COMPOSE.read_text())


def parse_duration(value):
    """A Compose duration ("40s", "1m30s", "1h") in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|us|m|s)", str(value))
    assert parts and "".join(n + u for n, u in parts) == str(value), f"bad duration {value!r}"
    return sum(float(n) * units[u] for n, u in parts)


def parse_bytes(value):
    """A Compose byte size ("1G", "1024m", "1gb", 1073741824) in bytes."""
    if isinstance(value, int):
        return value
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([bkmg]?)b?", str(value).strip().lower())
    assert m, f"bad byte size {value!r}"
    return int(float(m.group(1)) * 1024 ** "bkmg".index(m.group(2) or "b"))


def env_of(service):
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return {k: (None if v is None else str(v)) for k, v in env.items()}


def walk_keys(node, path=()):
    """Every (path, key) of a parsed YAML document."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield path, k
            yield from walk_keys(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk_keys(v, path + (i,))


def tmpfs_paths(service):
    tmpfs = service.get("tmpfs") or []
    if isinstance(tmpfs, str):
        tmpfs = [tmpfs]
    return {t.split(":", 1)[0] for t in tmpfs}


def apt_packages(stage_instructions):
    """Packages named by `apt-get install` in a stage's RUN instructions."""
    pkgs = []
    for word, args in stage_instructions:
        if word != "RUN":
            continue
        for cmd in re.split(r"&&|;|\|\|", args):
            toks = shlex.split(cmd)
            if len(toks) >= 2 and toks[0] in ("apt-get", "apt") and "install" in toks:
                rest = toks[toks.index("install") + 1:]
                pkgs += [t for t in rest if not t.startswith("-")]
    return pkgs


def exec_form(args):
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def docker_compose():
    """Debian's docker-compose 1.29: installed with apt-get if missing (as
    root); a failure when it cannot be had, since the compose file's
    validation rests on it."""
    exe = shutil.which("docker-compose")
    if exe is None and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends",
                        "docker-compose"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"), timeout=300)
        exe = shutil.which("docker-compose")
    if exe is None:
        pytest.fail("docker-compose is not installed and could not be installed with apt-get: "
                    "install Debian's docker-compose package (`make deps` does)")
    return exe


def compose_env(**extra):
    """The environment for docker-compose: none of the variables the file
    interpolates (so their dev defaults apply), no COMPOSE_* settings, and an
    engine address where no engine is (none is needed)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("COMPOSE_", "DOCKER_"))
           and k not in ("REDIS_PASSWORD", "STRATQ_API_TOKENS_SRC")}
    env["DOCKER_HOST"] = "unix:///nonexistent/docker.sock"
    env.update(extra)
    return env


def run_v1(*args, **extra_env):
    return subprocess.run([docker_compose(), *args], cwd=REPO, env=compose_env(**extra_env),
                          capture_output=True, text=True, timeout=120)


# --------------------------------------------------------------------------
# the compose file against the Compose Specification, as docker-compose checks it


def compose_config_quiet(path):
    """`docker-compose -f PATH config -q` with config/dev as the project
    directory, so that a copy elsewhere resolves its paths as the file does."""
    return subprocess.run([docker_compose(), "-f", str(path), "--project-directory",
                           str(COMPOSE.parent), "config", "-q"],
                          cwd=REPO, env=compose_env(), capture_output=True, text=True,
                          timeout=120)


def test_compose_file_validates():
    # docker-compose 1.29 checks a file with `services:` against the Compose
    # Specification schema it ships (compose/config/compose_spec.json).
    r = run_v1("-f", COMPOSE_REL, "config", "-q")
    assert r.returncode == 0 and not r.stdout, r.stdout + r.stderr
    assert "WARNING" not in r.stderr, r.stderr


@pytest.mark.parametrize("mutate, error", [
    (lambda d: d["services"]["worker"].update(replica=3),
     "Unsupported config option for services.worker: 'replica'"),
    (lambda d: d["services"]["worker"].update(cap_drop="ALL"),
     "services.worker.cap_drop contains an invalid type"),
    (lambda d: d["services"]["worker"]["deploy"]["resources"]["limits"].update(mem="1G"),
     "services.worker.deploy.resources.limits value 'mem'"),
    (lambda d: d["services"]["cache"]["healthcheck"].update(interval=5),
     "services.cache.healthcheck.interval contains an invalid type"),
    (lambda d: d["services"]["api"]["depends_on"]["cache"].update(condition="healthy"),
     "services.api.depends_on.cache.condition contains \"healthy\""),
], ids=["unknown-key", "wrong-type", "unknown-limit", "duration-as-number", "bad-condition"])
def test_validation_rejects_a_bad_compose_file(mutate, error, tmp_path):
    # The validation in the test above would catch these mistakes. The
    # unchanged copy passes, so each failure is the mutation's.
    copy = tmp_path / "docker-compose.yaml"
    copy.write_text(yaml.safe_dump(load_compose()))
    r = compose_config_quiet(copy)
    assert r.returncode == 0, r.stderr
    doc = load_compose()
    mutate(doc)
    copy.write_text(yaml.safe_dump(doc))
    r = compose_config_quiet(copy)
    assert r.returncode != 0, "a broken compose file validated"
    assert error in r.stderr, r.stderr


# --------------------------------------------------------------------------
# what the guide and the issue ask of the compose file


def test_guide_numbers():
    """docs/deploy.md states the guide's numbers for the development stack,
    and the constants the tests below check the file against are those."""
    text = DEPLOY_MD.read_text()
    [row] = [ln for ln in text.splitlines() if ln.startswith("| `worker` |")]
    assert f"`deploy.replicas: {DEV_WORKERS}`" in row, row
    m = re.search(r"limited to (\d+) GB of memory and (\d+) CPU", row)
    assert m and int(m.group(1)) * GiB == DEV_WORKER_MEMORY and float(m.group(2)) == DEV_WORKER_CPUS
    assert f"`{COMPOSE_REL}`" in text


def test_guide_commands_name_services_of_the_file():
    """`ps worker`, `--scale worker=5`, `ps -q cache`, `logs -f worker`: every
    service the guide's docker-compose commands (docs/deploy.md, "Day to
    day") name is in the file."""
    text = DEPLOY_MD.read_text().split("### Day to day", 1)[1].split("\n#", 1)[0]
    cmds = re.findall(rf"docker-compose -f {re.escape(COMPOSE_REL)} ([^\n)]*)",
                      text.replace("\\\n", " "))
    assert len(cmds) >= 5, cmds
    named = set()
    for cmd in cmds:
        toks = cmd.split("#")[0].split()
        if "--scale" in toks:
            named.add(toks[toks.index("--scale") + 1].split("=")[0])
        if toks[0] in ("ps", "logs"):
            named |= {t for t in toks[1:] if not t.startswith("-")}
    assert named == {"worker", "cache"}, named
    assert named <= set(load_compose()["services"])


def test_services():
    services = load_compose()["services"]
    assert {"cache", "api", "worker"} <= set(services)


def test_no_container_name_anywhere():
    # A fixed container name would make `--scale worker=N` fail.
    found = [path + (key,) for path, key in walk_keys(load_compose()) if key == "container_name"]
    assert not found, found


def test_worker_replicas_and_limits():
    worker = load_compose()["services"]["worker"]
    deploy = worker["deploy"]
    assert deploy["replicas"] == DEV_WORKERS
    assert deploy.get("mode", "replicated") == "replicated"
    limits = deploy["resources"]["limits"]
    assert parse_bytes(limits["memory"]) == DEV_WORKER_MEMORY
    assert float(limits["cpus"]) == DEV_WORKER_CPUS
    # Limits only in deploy: mem_limit/cpus next to them would be a second
    # source of truth (and Compose v2 refuses them when they differ).
    for key in ("mem_limit", "cpus", "scale", "container_name", "ports"):
        assert key not in worker, key


def test_stop_grace_period_above_drain_timeout():
    worker = load_compose()["services"]["worker"]
    drain = int(env_of(worker)["STRATQ_DRAIN_TIMEOUT_S"])
    grace = parse_duration(worker["stop_grace_period"])
    # After its drain timeout a worker still hands the running job back to
    # the queue and exits; leave it some seconds for that before SIGKILL.
    assert grace >= drain + 5, (grace, drain)


def test_depends_on_cache_healthy():
    services = load_compose()["services"]
    for name in ("api", "worker"):
        assert services[name]["depends_on"]["cache"]["condition"] == "service_healthy", name


def test_cache_is_redis_with_aof_and_a_redis_cli_healthcheck():
    cache = load_compose()["services"]["cache"]
    # Built from Debian's redis-server on the same base as stratq:dev (no
    # registry needed; `make images`).
    assert cache["image"] == "stratq-redis:dev", cache["image"]
    assert cache["build"]["context"] == "../.."
    redis_df = parse_dockerfile((REPO / cache["build"]["dockerfile"]).read_text())
    [(from_args, steps)] = stages(redis_df)
    assert from_args.split()[0] == "debian:bookworm-slim", from_args
    runs = " ".join(a for w, a in steps if w == "RUN")
    assert "apt-get install" in runs and "redis-server" in runs and "redis-tools" in runs, runs
    assert ("USER", "999:999") in steps, steps
    cmd = cache["command"]
    cmd = shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]
    assert cmd[0] == "redis-server"
    assert cmd[cmd.index("--appendonly") + 1] == "yes"
    test = cache["healthcheck"]["test"]
    test = " ".join(test[1:]) if isinstance(test, list) else test
    assert "redis-cli" in test and "ping" in test.lower()
    # The cache keeps its data (the AOF) in a volume, not in the container.
    assert any(str(v).split(":")[1].startswith("/data") for v in cache["volumes"])


def test_cache_password_reaches_redis_cli():
    # With requirepass on, `docker exec <cache> redis-cli LLEN ...` (the guide)
    # and the healthcheck need REDISCLI_AUTH in the cache's environment.
    cache = load_compose()["services"]["cache"]
    cmd = [str(c) for c in cache["command"]]
    if "--requirepass" in cmd:
        assert env_of(cache).get("REDISCLI_AUTH") == cmd[cmd.index("--requirepass") + 1]


def test_stratq_services_are_hardened():
    services = load_compose()["services"]
    for name in ("api", "worker"):
        s = services[name]
        assert s.get("read_only") is True, name
        assert "/tmp" in tmpfs_paths(s), name
        assert [c.upper() for c in s.get("cap_drop", [])] == ["ALL"], name
        assert not s.get("cap_add"), name
        assert any(o.replace("=", ":") in ("no-new-privileges:true", "no-new-privileges")
                   for o in s.get("security_opt", [])), name
        assert not s.get("privileged"), name
        assert s.get("network_mode") != "host", name
        # The image's numeric non-root user stays in charge.
        assert str(s.get("user", "10001")).split(":")[0] not in ("0", "root"), name


def test_init_is_tini_or_compose_init():
    services = load_compose()["services"]
    entry = [exec_form(a) for w, a in parse_dockerfile(DOCKERFILE.read_text())
             if w == "ENTRYPOINT"][-1]
    for name in ("api", "worker"):
        s = services[name]
        assert "entrypoint" not in s, name
        assert s.get("init") is True or Path(entry[0]).name in ("tini", "tini-static"), name


def test_api_and_worker_env():
    services = load_compose()["services"]
    for name in ("api", "worker"):
        env = env_of(services[name])
        url = env["STRATQ_REDIS_URL"]
        assert re.fullmatch(r"redis://(:[^@]+@)?cache:6379(/\d+)?", url), url
        assert env.get("STRATQ_QUEUE", QUEUE) == QUEUE
        assert services[name]["image"] == services["api"]["image"]


def test_api_is_published_and_can_listen_beyond_loopback():
    api = load_compose()["services"]["api"]
    env = env_of(api)
    port = int(env.get("STRATQ_API_PORT", 8080))
    assert port == 8080
    assert env["STRATQ_API_BIND"] == "0.0.0.0"
    published = []
    for p in api["ports"]:
        if isinstance(p, dict):
            published.append((str(p.get("published")), int(p["target"])))
        else:
            # The host port is 8080 unless STRATQ_API_HOST_PORT moves it.
            p = re.sub(r"\$\{STRATQ_API_HOST_PORT:-(\d+)\}", r"\1", str(p))
            parts = p.split("/")[0].split(":")
            published.append((parts[-2] if len(parts) > 1 else None, int(parts[-1])))
    assert ("8080", port) in published, published
    # stratq api refuses a non-loopback bind without a tokens file
    # (docs/api.md), so the file must be mounted and hold a token.
    tokens = env["STRATQ_API_TOKENS_FILE"]
    secrets = {s if isinstance(s, str) else s["source"]: s for s in api["secrets"]}
    mounted = {f"/run/secrets/{n if isinstance(s, str) else s.get('target', n)}": n
               for n, s in secrets.items()}
    assert tokens in mounted, (tokens, mounted)
    src = load_compose()["secrets"][mounted[tokens]]["file"]
    default = re.fullmatch(r"\$\{[A-Z_]+:-(.+)\}", src)
    path = COMPOSE.parent / (default.group(1) if default else src)
    lines = [ln.strip() for ln in path.read_text().splitlines()]
    assert [ln for ln in lines if ln and not ln.startswith("#")], f"{path} holds no token"


def test_worker_publishes_no_port_and_its_healthcheck_matches_its_health_port():
    worker = load_compose()["services"]["worker"]
    assert "ports" not in worker
    hc = worker.get("healthcheck")
    if hc:
        port = env_of(worker)["STRATQ_HEALTH_PORT"]
        test = " ".join(hc["test"]) if isinstance(hc["test"], list) else hc["test"]
        assert f"127.0.0.1:{port}/" in test, test
        # No curl or wget in the image: the probe has to use what is there.
        assert "curl" not in test and "wget" not in test


def test_build_context_is_the_repo_dockerfile():
    services = load_compose()["services"]
    for name in ("api", "worker"):
        build = services[name]["build"]
        ctx = (COMPOSE.parent / build["context"]).resolve()
        assert ctx == REPO, ctx
        assert (ctx / build.get("dockerfile", "Dockerfile")).resolve() == DOCKERFILE


# --------------------------------------------------------------------------
# Debian's docker-compose (v1)


@pytest.mark.parametrize("flags", [["--compatibility"], []], ids=["compatibility", "plain"])
def test_v1_renders_replicas_and_limits(flags):
    r = run_v1(*flags, "-f", COMPOSE_REL, "config")
    assert r.returncode == 0, r.stderr
    assert "WARNING" not in r.stderr, r.stderr
    rendered = yaml.safe_load(r.stdout)
    worker = rendered["services"]["worker"]
    assert worker["deploy"]["replicas"] == DEV_WORKERS
    limits = worker["deploy"]["resources"]["limits"]
    assert parse_bytes(limits["memory"]) == DEV_WORKER_MEMORY
    assert float(limits["cpus"]) == DEV_WORKER_CPUS
    assert parse_duration(worker["stop_grace_period"]) > int(
        env_of(worker)["STRATQ_DRAIN_TIMEOUT_S"])
    assert "container_name" not in r.stdout


def test_v1_lists_the_guides_services():
    r = run_v1("-f", COMPOSE_REL, "config", "--services")
    assert r.returncode == 0, r.stderr
    assert set(r.stdout.split()) == {"cache", "api", "worker"}


def test_v1_one_password_everywhere():
    r = run_v1("-f", COMPOSE_REL, "config", REDIS_PASSWORD="s3cret-for-test")
    assert r.returncode == 0, r.stderr
    services = yaml.safe_load(r.stdout)["services"]
    cmd = services["cache"]["command"]
    assert cmd[cmd.index("--requirepass") + 1] == "s3cret-for-test"
    assert env_of(services["cache"])["REDISCLI_AUTH"] == "s3cret-for-test"
    for name in ("api", "worker"):
        assert env_of(services[name])["STRATQ_REDIS_URL"] == "redis://:s3cret-for-test@cache:6379"


# Builds docker-compose 1.29's Project from the file and prints, per service,
# the scale and the HostConfig it would create containers with. A client
# whose network and volume look-ups say "not found" stands in for the engine.
HOST_CONFIG_PROBE = r"""
import json, sys
import docker
from docker.errors import NotFound
from compose.config import config
from compose.config.environment import Environment
from compose.project import Project

class NoEngine(docker.APIClient):
    def inspect_network(self, name):
        raise NotFound("no engine")
    def inspect_volume(self, name):
        raise NotFound("no engine")
    def _url(self, *a, **k):
        raise RuntimeError("this probe must not reach an engine")

project_dir = sys.argv[1]
env = Environment.from_env_file(project_dir)
details = config.find(project_dir, [sys.argv[2]], env)
project = Project.from_config("stratqtest", config.load(details),
                              NoEngine(base_url="unix:///nonexistent.sock", version="1.41"))
out = {}
for s in project.services:
    out[s.name] = {"scale": s.scale_num,
                   "host_config": s._get_container_host_config({}, one_off=False),
                   "stop_grace_period": s.options.get("stop_grace_period")}
print(json.dumps(out))
"""


def v1_host_configs():
    exe = docker_compose()
    shebang = Path(exe).read_text(errors="replace").splitlines()[0]
    interp = shebang[2:].strip().split()[0] if shebang.startswith("#!") else "/usr/bin/python3"
    r = subprocess.run([interp, "-c", HOST_CONFIG_PROBE, str(COMPOSE.parent), COMPOSE.name],
                       capture_output=True, text=True, env=compose_env(), timeout=120)
    if r.returncode != 0 and "ModuleNotFoundError" in r.stderr:
        pytest.skip(f"docker-compose's Python modules are not importable by {interp}")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_v1_creates_workers_with_the_limits():
    services = v1_host_configs()
    worker = services["worker"]
    assert worker["scale"] == DEV_WORKERS
    hc = worker["host_config"]
    assert hc["Memory"] == DEV_WORKER_MEMORY
    assert hc["NanoCpus"] == int(DEV_WORKER_CPUS * 1e9)
    drain = int(env_of(load_compose()["services"]["worker"])["STRATQ_DRAIN_TIMEOUT_S"])
    assert parse_duration(worker["stop_grace_period"]) >= drain + 5
    for name in ("api", "worker"):
        hc = services[name]["host_config"]
        assert hc["ReadonlyRootfs"] is True, name
        assert "/tmp" in hc["Tmpfs"], name
        assert hc["CapDrop"] == ["ALL"], name
        assert "no-new-privileges:true" in hc["SecurityOpt"], name
        assert not hc.get("Privileged"), name
    assert services["api"]["host_config"]["PortBindings"]["8080/tcp"][0]["HostPort"] == "8080"
    assert not services["worker"]["host_config"]["PortBindings"]
    assert services["cache"]["scale"] == 1 and services["api"]["scale"] == 1


# --------------------------------------------------------------------------
# Dockerfile


def test_dockerfile_two_bookworm_slim_stages():
    st = stages(dockerfile())
    assert len(st) == 2, [s[0] for s in st]
    for from_args, _ in st:
        words = from_args.split()
        assert words[0] == "debian:bookworm-slim", from_args
        assert len(words) == 3 and words[1].upper() == "AS", from_args
    build_name = st[0][0].split()[2]
    copies = [a for w, a in st[1][1] if w == "COPY" and a.startswith("--from=")]
    assert any(a.startswith(f"--from={build_name} ") for a in copies), copies


def test_dockerfile_no_remote_add():
    for word, args in dockerfile():
        assert word != "ADD" or not re.search(r"(https?|git)://|git@", args), args
        if word == "RUN":
            assert not re.search(r"\b(curl|wget)\b", args), args


def test_dockerfile_runtime_user_entrypoint_cmd():
    runtime = stages(dockerfile())[-1][1]
    uid, gid = runtime_user()
    assert uid.isdigit() and int(uid) >= 1000, (uid, gid)
    assert not gid or (gid.isdigit() and int(gid) != 0), (uid, gid)
    entry = exec_form([a for w, a in runtime if w == "ENTRYPOINT"][-1])
    assert entry[:2] == ["/usr/bin/tini", "--"], entry
    assert entry[2:] == ["stratq"], entry
    assert exec_form([a for w, a in runtime if w == "CMD"][-1]) == ["worker"]


def test_only_the_executor_program_links_libpython():
    for program, wants in (("stratq", False), ("stratq-executor", True)):
        binary = REPO / "build" / program
        if not binary.is_file() or not shutil.which("readelf"):
            pytest.skip(f"needs build/{program} (make) and readelf")
        libpython = [lib for lib in needed_libraries(binary) if lib.startswith("libpython")]
        assert bool(libpython) == wants, (program, libpython)


def test_dockerfile_installs_binary_and_harness_where_they_are_found():
    runtime = stages(dockerfile())[-1][1]
    copies = [a.split() for w, a in runtime if w == "COPY"]
    binary = [c for c in copies if c[0].startswith("--from=") and c[1].endswith("/build/stratq")]
    assert binary and binary[0][2] == "/usr/local/bin/stratq", copies
    # The worker runs the executor program found beside stratq.
    executor = [c for c in copies if c[0].startswith("--from=") and c[1].endswith("/build/stratq-executor")]
    assert executor and executor[0][2] == "/usr/local/bin/stratq-executor", copies
    harness = [c for c in copies if c[0].rstrip("/") == "python/stratq"]
    assert harness, copies
    harness_dir = runtime_env()["STRATQ_HARNESS_DIR"]
    # util_find_harness_dir wants <dir>/stratq/_harness.py; the binary also
    # looks in <bindir>/../share/stratq/python by itself.
    assert harness[0][1].rstrip("/") == f"{harness_dir}/stratq"
    assert harness_dir == "/usr/local/share/stratq/python"
    assert (REPO / "python/stratq/_harness.py").is_file()
    assert runtime_env().get("TMPDIR", "/tmp") == "/tmp"


def test_dockerfile_runtime_packages():
    st = stages(dockerfile())
    runtime = set(apt_packages(st[-1][1]))
    for pkg in ("python3", "python3-numpy", "python3-pandas", "tini"):
        assert pkg in runtime, pkg
    dev = [p for p in runtime if p.endswith("-dev") or p in ("build-essential", "gcc", "make")]
    assert not dev, f"build tools in the runtime stage: {dev}"


def test_dockerfile_build_stage_has_what_the_makefile_links():
    """Each pkg-config module of the Makefile's PKGS line, and -lseccomp,
    comes from a package the build stage installs (looked up on this Debian
    machine with pkg-config and dpkg)."""
    if not (shutil.which("pkg-config") and shutil.which("dpkg")):
        pytest.skip("needs pkg-config and dpkg")
    build = set(apt_packages(stages(dockerfile())[0][1]))
    assert {"build-essential", "pkg-config"} <= build
    makefile = (REPO / "Makefile").read_text()
    # stratq's modules and the executor program's (python3-embed).
    mods = sorted({m for var in ("PKGS", "EXEC_PKGS")
                   for m in re.search(rf"^{var}\s*:?=\s*(.+)$", makefile, re.M).group(1).split()})
    assert "python3-embed" in mods, mods
    libs = re.findall(r"(?<![\w-])-l(\w+)", re.search(r"^PKG_LIBS\s*:?=.*$", makefile, re.M).group(0))
    files = []
    for mod in mods:
        r = subprocess.run(["pkg-config", "--path", mod], capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"pkg-config module {mod} is not installed here (make deps)")
        files.append(r.stdout.strip())
    for lib in libs:
        if lib == "m":
            continue
        r = subprocess.run(["dpkg", "-S", f"lib{lib}.so"], capture_output=True, text=True)
        assert r.returncode == 0, f"no package ships lib{lib}.so here"
        files.append(next(ln.split(": ", 1)[1] for ln in r.stdout.splitlines()
                          if ln.split(": ", 1)[1].endswith(f"/lib{lib}.so")))
    for f in files:
        # A symlink (python3-embed.pc) and its target (python-3.11-embed.pc)
        # may come from different packages (libpython3-dev, libpython3.11-dev).
        owners = set()
        for path in {f, os.path.realpath(f)}:
            r = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True)
            if r.returncode == 0:
                owners |= {p.split(":")[0].strip() for p in r.stdout.split(": ")[0].split(",")}
        assert owners, f"no package ships {f} here"
        assert owners & build, f"{f} comes from {owners}, which the build stage does not install"


# Libraries a bookworm-slim image has from the start.
BASE_IMAGE_PACKAGES = {"libc6", "libgcc-s1", "libstdc++6", "zlib1g"}


def needed_libraries(binary):
    dyn = subprocess.run(["readelf", "-d", str(binary)], capture_output=True, text=True,
                         check=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dyn)


@pytest.mark.parametrize("program", ["stratq", "stratq-executor"])
def test_dockerfile_runtime_has_every_library_the_binary_needs(program):
    binary = REPO / "build" / program
    if not binary.is_file() or not shutil.which("readelf") or not shutil.which("dpkg"):
        pytest.skip(f"needs build/{program} (make), readelf and dpkg")
    runtime = set(apt_packages(stages(dockerfile())[-1][1]))
    needed = needed_libraries(binary)
    assert needed
    for lib in needed:
        r = subprocess.run(["dpkg", "-S", f"*/{lib}"], capture_output=True, text=True)
        assert r.returncode == 0, f"no package ships {lib} here"
        owners = {p.split(":")[0].strip() for ln in r.stdout.splitlines()
                  for p in ln.split(": ")[0].split(",")}
        assert owners & (runtime | BASE_IMAGE_PACKAGES), \
            f"build/{program} needs {lib} from {owners}; add it to the runtime stage"


def bookworm_apt():
    try:
        osr = Path("/etc/os-release").read_text()
    except OSError:
        osr = ""
    if "VERSION_CODENAME=bookworm" not in osr or not shutil.which("apt-cache"):
        pytest.skip("package names are checked on Debian 12 (bookworm) with apt-cache")
    if not list(Path("/var/lib/apt/lists").glob("*_Packages*")):
        pytest.skip("no apt package lists here: run apt-get update")


def test_dockerfile_packages_exist_in_bookworm():
    bookworm_apt()
    st = stages(dockerfile())
    missing = []
    for _, instr in st:
        for pkg in apt_packages(instr):
            r = subprocess.run(["apt-cache", "show", "--no-all-versions", pkg],
                               capture_output=True, text=True)
            if r.returncode != 0 or not r.stdout.strip():
                missing.append(pkg)
    assert not missing, f"not in this machine's bookworm package lists: {missing}"


def test_dockerfile_libpython_matches_debian_python3():
    # The warm executor embeds libpython3.X; the jobs run /usr/bin/python3 and
    # numpy/pandas built for it: both must be the same X.
    bookworm_apt()
    runtime = apt_packages(stages(dockerfile())[-1][1])
    libpy = [p for p in runtime if re.fullmatch(r"libpython3\.\d+", p)]
    assert len(libpy) == 1, runtime
    r = subprocess.run(["apt-cache", "show", "--no-all-versions", "python3"],
                       capture_output=True, text=True, check=True)
    depends = re.search(r"^Depends: (.*)$", r.stdout, re.M).group(1)
    version = re.search(r"python3\.(\d+)\b", depends).group(0)
    assert libpy[0] == f"lib{version}", (libpy, depends)


# --------------------------------------------------------------------------
# .dockerignore


def dockerignore_excludes(path, patterns):
    """Docker's rule: the last pattern that matches the path or one of its
    parent directories decides; `!` re-includes."""
    excluded = False
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    for pat in patterns:
        neg = pat.startswith("!")
        pat = pat[1:] if neg else pat
        pat = pat.strip().strip("/")
        rx = ""
        i = 0
        while i < len(pat):
            if pat.startswith("**/", i):
                rx += "(.*/)?"
                i += 3
            elif pat.startswith("**", i):
                rx += ".*"
                i += 2
            elif pat[i] == "*":
                rx += "[^/]*"
                i += 1
            elif pat[i] == "?":
                rx += "[^/]"
                i += 1
            else:
                rx += re.escape(pat[i])
                i += 1
        if any(re.fullmatch(rx, p) for p in prefixes):
            excluded = not neg
    return excluded


def test_dockerignore():
    patterns = [ln.strip() for ln in DOCKERIGNORE.read_text().splitlines()
                if ln.strip() and not ln.strip().startswith("#")]
    for path in ("Makefile", "src/main.c", "src/queue/lua/enqueue.lua", "tools/embed.sh",
                 "python/stratq/_harness.py", "python/stratq/__init__.py"):
        assert not dockerignore_excludes(path, patterns), f"{path} is left out of the context"
    for path in ("build/stratq", "build/obj/main.o", ".git/HEAD", ".stratq/appendonly.aof",
                 "python/stratq/__pycache__/_harness.cpython-311.pyc", "tests/unit/test_job.c",
                 "config/dev/api-tokens.dev"):
        assert dockerignore_excludes(path, patterns), f"{path} is sent to the builder"
    # Everything the Dockerfile COPYs from the context is in it.
    for word, args in dockerfile():
        if word == "COPY" and not args.startswith("--from="):
            for src in args.split()[:-1]:
                assert (REPO / src).exists(), src
                assert not dockerignore_excludes(src.rstrip("/"), patterns), src
