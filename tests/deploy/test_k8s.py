"""Offline checks of the Kubernetes manifests in config/deploy/k8s.

Every YAML document there, and the kustomize build of the base, each overlay
and each overlay with the KEDA component, is decoded strictly into its
official Go type by tests/deploy/kubecheck (conftest.py builds it): Kubernetes
1.26's k8s.io/api, KEDA's own API types, kustomize's Kustomization. An
unknown or misspelt field, a duplicate key, a value of the wrong type or an
apiVersion and kind without a type fails. The builds are kustomize's library
run as `kubectl kustomize` runs it. Then the objects are checked for what the
worker scaling guide and docs/scaling.md promise: names, namespaces, the
HPA's numbers, requests the HPA can act on, probes on the health port, the
grace period above the drain timeout, the security context, Secrets, the
PodDisruptionBudget's arithmetic, the NetworkPolicies and KEDA. The API and
the workers run as the container run of the Compose stack proved them: the
Dockerfile's user, a read-only root with a tmpfs /tmp, no capabilities,
RuntimeDefault seccomp.

No network beyond the Go module proxy for kubecheck's first build, and no
cluster: needs python3-yaml and Go (Debian's golang-go). A missing Go fails
the tests that need it rather than skipping them, so that no check passes by
not running.

    /usr/bin/python3 -m pytest -q tests/deploy/test_k8s.py
"""

import functools
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import runtime_env, runtime_user

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "config" / "deploy" / "k8s"
GUIDE_PATH = K8S / "worker.yaml"
CONFIG_H = ROOT / "src" / "common" / "config.h"
SCALING_MD = ROOT / "docs" / "scaling.md"
API_ROUTES = ROOT / "src" / "api" / "router.c"

ENVS = ("stage", "prod")
# The documented KEDA switches: components/keda added to an overlay, alone
# or followed by keda-sentinel (Redis Sentinel) and keda-tls (TLS).
KEDA_VARIANTS = {
    "keda": ("keda",),
    "keda+tls": ("keda", "keda-tls"),
    "keda+sentinel": ("sentinel", "keda", "keda-sentinel"),
    "keda+sentinel+tls": ("sentinel", "keda", "keda-sentinel", "keda-tls"),
}
# What kustomize builds: the base alone, each overlay as committed,
# and each overlay with each KEDA variant.
DEFAULT_BUILDS = ("base",) + ENVS
KEDA_BUILDS = tuple(f"{env}+{variant}" for env in ENVS for variant in KEDA_VARIANTS)
BUILDS = DEFAULT_BUILDS + KEDA_BUILDS

# The worker scaling guide's numbers.
GUIDE_MIN, GUIDE_MAX = 2, 10
GUIDE_CPU_TARGET, GUIDE_MEMORY_TARGET = 70, 80
GUIDE_CPU_LIMIT_M, GUIDE_MEMORY_LIMIT = 2000, 2 * 1024**3
GUIDE_QUEUE = "python_execution_queue"
GUIDE_QUEUE_PER_WORKER = 5  # "scale up when the queue is consistently > 5"

# A busy worker runs one job; a single-threaded Python job keeps one core
# busy. An idle warm worker (supervisor, executor with numpy and pandas
# imported, its spare child) holds about 55 MB of PSS; with the page cache of
# its libraries the container's working set stays under this.
ONE_JOB_CPU_M = 1000
IDLE_WORKER_BYTES = 150 * 1024**2
# A job that loads a few years of minute bars into pandas: the memory target
# must fire for a worker running one like it (docs/scaling.md).
LARGE_JOB_BYTES = 300 * 1024**2

HEALTH_PORT = 8081
# The Deployments that run stratq's image. Their /tmp is a tmpfs of the
# Compose stack's size (`/tmp:size=256m`, config/dev/docker-compose.yaml),
# the one the container run was made with.
STRATQ_APPS = ("worker", "api")
TMP_BYTES = 256 * 1024**2
PROBES = ("startupProbe", "livenessProbe", "readinessProbe")
SECRET_NAME = "stratq"
STRATQ_IMAGE = "ghcr.io/OWNER/stratq"
NAMESPACED_KINDS = {
    "ConfigMap", "Secret", "ServiceAccount", "Service", "Deployment",
    "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy",
    "ScaledObject", "TriggerAuthentication",
}


# ---------------------------------------------------------------- helpers


def load_docs(text):
    return [d for d in yaml.safe_load_all(text) if d is not None]


def manifest_files():
    """Every YAML file under config/deploy/k8s, once per real file (the
    guide's worker.yaml is a link to base/worker.yaml)."""
    seen, files = set(), []
    for path in sorted(K8S.rglob("*.y*ml")):
        real = path.resolve()
        if real not in seen:
            seen.add(real)
            files.append(path)
    return files


def decode_errors(results):
    """The errors kubecheck found, one line per document that has any."""
    return [
        f"{r['file']}[{r['index']}] {r['apiVersion']} {r['kind']} {r['name']}: "
        + "; ".join(r["errors"])
        for r in results if r["errors"]
    ]


def find(docs, kind, name=None):
    return [
        d for d in docs
        if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]


def one(docs, kind, name):
    found = find(docs, kind, name)
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def quantity(q):
    """A Kubernetes quantity as a number: CPU in millicores when it ends in
    m, bytes for memory suffixes, otherwise the plain number."""
    s = str(q)
    suffixes = {
        "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4,
        "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
    }
    for suf, mul in suffixes.items():
        if s.endswith(suf):
            return float(s[: -len(suf)]) * mul
    return float(s)


def cpu_m(q):
    s = str(q)
    return float(s[:-1]) if s.endswith("m") else float(s) * 1000


@functools.lru_cache(maxsize=None)
def stratq_settings():
    """The STRATQ_* variables of src/common/config.h: env -> (type, default,
    min, max)."""
    text = re.sub(r"\\\n", " ", CONFIG_H.read_text())
    pat = re.compile(
        r'X\(\s*\w+,\s*"[^"]*",\s*"(STRATQ_\w+)",\s*(CFG_\w+),\s*"([^"]*)",\s*([^,]+),\s*([^,]+),'
    )

    def num(expr):
        expr = expr.replace("LL", "").replace("MIB", "(1024 * 1024)").strip()
        assert re.fullmatch(r"-?[0-9*() +]+", expr), expr
        return eval(expr, {"__builtins__": {}})  # digits, * and a sign only, checked above

    out = {}
    for env, typ, default, lo, hi in pat.findall(text):
        out[env] = (typ, default, num(lo), num(hi))
    assert "STRATQ_REDIS_URL" in out and "STRATQ_DRAIN_TIMEOUT_S" in out, "config.h not parsed"
    return out


def deployment(docs, name):
    return one(docs, "Deployment", name)


def container(dep, name=None):
    cs = dep["spec"]["template"]["spec"]["containers"]
    if name is None:
        assert len(cs) == 1
        return cs[0]
    return next(c for c in cs if c["name"] == name)


def pod_spec(docs, name):
    return deployment(docs, name)["spec"]["template"]["spec"]


def effective(pod, c, key):
    """A securityContext setting as the container gets it: its own, else
    its pod's."""
    return c.get("securityContext", {}).get(key, pod.get("securityContext", {}).get(key))


def mounted_volumes(pod, c):
    """{mountPath: (volumeMount, the pod's volume)} of a container."""
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    return {m["mountPath"]: (m, volumes[m["name"]]) for m in c.get("volumeMounts", [])}


def memory_volume_bytes(pod, c):
    """What the container's memory-backed emptyDirs may hold: a tmpfs's
    pages count against the container's memory limit."""
    total = 0
    for path, (_, vol) in mounted_volumes(pod, c).items():
        empty = vol.get("emptyDir")
        if empty is not None and empty.get("medium") == "Memory":
            assert "sizeLimit" in empty, f"{path}: a tmpfs without a size limit"
            total += quantity(empty["sizeLimit"])
    return total


def probe_port(c, action):
    """The container port a probe's httpGet or tcpSocket targets."""
    target = action["port"]
    if isinstance(target, str):
        return {p["name"]: p["containerPort"] for p in c["ports"]}[target]
    return target


def env_value(docs, c, name):
    """The value a container sees for an environment variable: its env entry
    (literal), else the ConfigMaps of its envFrom; None when unset."""
    for e in c.get("env", []):
        if e["name"] == name:
            return e.get("value", e.get("valueFrom"))
    for ef in c.get("envFrom", []):
        if "configMapRef" in ef:
            cm = one(docs, "ConfigMap", ef["configMapRef"]["name"])
            if name in cm.get("data", {}):
                return cm["data"][name]
    return None


def env_names(docs, c):
    names = {e["name"] for e in c.get("env", [])}
    for ef in c.get("envFrom", []):
        if "configMapRef" in ef:
            names |= set(one(docs, "ConfigMap", ef["configMapRef"]["name"]).get("data", {}))
    return names


def selects(selector, labels):
    assert "matchExpressions" not in selector, "matchExpressions: extend the test"
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def pdb_disruptions_allowed(spec, replicas, healthy):
    """What the disruption controller allows for a PDB spec with `replicas`
    expected pods of which `healthy` are ready (percentages round up, as in
    Kubernetes' GetScaledValueFromIntOrPercent)."""

    def scaled(v):
        if isinstance(v, str) and v.endswith("%"):
            return -(-int(v[:-1]) * replicas // 100)
        return int(v)

    if "minAvailable" in spec:
        desired = scaled(spec["minAvailable"])
    else:
        desired = replicas - scaled(spec["maxUnavailable"])
    return max(0, healthy - desired), desired


def example_secret():
    docs = load_docs((K8S / "secret.example.yaml").read_text())
    return one(docs, "Secret", SECRET_NAME)


# ---------------------------------------------------------------- builds


@pytest.fixture(scope="session")
def built_yaml(kubecheck, tmp_path_factory):
    """Each build's YAML, as `kubectl kustomize` prints it."""
    out = {"base": kubecheck.build(K8S / "base")}
    for env in ENVS:
        out[env] = kubecheck.build(K8S / "overlays" / env)
    # The KEDA switches as docs/scaling.md tells them: the components added
    # to an overlay, in that order. Done on copies so the tree is left as
    # committed.
    for variant, components in KEDA_VARIANTS.items():
        copy = tmp_path_factory.mktemp("k8s") / "k8s"
        shutil.copytree(K8S, copy, symlinks=True)
        for env in ENVS:
            kfile = copy / "overlays" / env / "kustomization.yaml"
            k = yaml.safe_load(kfile.read_text())
            k["components"] = (k.get("components") or []) + [f"../../components/{c}" for c in components]
            kfile.write_text(yaml.safe_dump(k))
            out[f"{env}+{variant}"] = kubecheck.build(copy / "overlays" / env)
    return out


@pytest.fixture(scope="session")
def builds(built_yaml):
    """Each build's objects, parsed."""
    return {build: load_docs(text) for build, text in built_yaml.items()}


# ---------------------------------------------------------------- the guide's file


def test_the_guides_path_holds_the_worker_deployment_and_its_hpa():
    docs = load_docs(GUIDE_PATH.read_text())
    assert [(d["kind"], d["metadata"]["name"]) for d in docs] == [
        ("Deployment", "worker"),
        ("HorizontalPodAutoscaler", "worker-hpa"),
    ]
    # The base builds from this very file (a link, so the two cannot drift).
    assert GUIDE_PATH.resolve() == (K8S / "base" / "worker.yaml").resolve()


# ---------------------------------------------------------------- strict decoding


@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: str(p.relative_to(K8S)))
def test_every_manifest_file_decodes_strictly(kubecheck, path):
    # kustomize's own files too: Kustomization and Component.
    results = kubecheck.check(path)
    assert results, f"{path} holds no document"
    assert len(results) == len(load_docs(path.read_text()))
    assert not decode_errors(results), "\n".join(decode_errors(results))


@pytest.mark.parametrize("build", BUILDS)
def test_every_built_object_decodes_strictly(kubecheck, built_yaml, builds, build):
    results = kubecheck.check(text=built_yaml[build])
    assert [(r["kind"], r["name"]) for r in results] == [
        (d["kind"], d["metadata"]["name"]) for d in builds[build]
    ]
    assert not decode_errors(results), "\n".join(decode_errors(results))


def set_in(doc, path, value):
    """doc with the key at path (keys and list indexes) set to value."""
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


CONTAINER = ("spec", "template", "spec", "containers", 0)


@pytest.mark.parametrize("file, index, path, value, error", [
    # A misspelt field, at any depth, in a Kubernetes type ...
    ("worker.yaml", 0, CONTAINER + ("resource",), {}, "unknown field"),
    ("worker.yaml", 1, ("spec", "minReplica"), 2, "unknown field"),
    # ... names are case-sensitive ...
    ("base/api.yaml", 0, ("spec", "Replicas"), 2, "unknown field"),
    # ... in KEDA's and in kustomize's ...
    ("components/keda/keda.yaml", 0, ("spec", "triggers", 0, "metricsType"), "AverageValue",
     "unknown field"),
    ("components/keda/keda.yaml", 1, ("spec", "secretTargetRef", 0, "paramater"), "address",
     "unknown field"),
    ("overlays/prod/kustomization.yaml", 0, ("resource",), [], "unknown field"),
    # ... a value of the wrong type ...
    ("worker.yaml", 1, ("spec", "maxReplicas"), "ten", "cannot unmarshal"),
    # ... and a kind nothing defines.
    ("components/keda/keda.yaml", 0, ("kind",), "ScaledObjects", "unknown apiVersion and kind"),
    ("worker.yaml", 1, ("apiVersion",), "autoscaling/v3", "unknown apiVersion and kind"),
], ids=["container-field", "hpa-field", "capitalised-field", "keda-trigger-field",
        "keda-auth-field", "kustomization-field", "wrong-type", "unknown-kind", "unknown-version"])
def test_strict_decoding_rejects_a_broken_manifest(kubecheck, file, index, path, value, error):
    # The strictness is what makes the checks above worth anything.
    doc = load_docs((K8S / file).read_text())[index]
    assert not decode_errors(kubecheck.check(text=yaml.safe_dump(doc)))
    [result] = kubecheck.check(text=yaml.safe_dump(set_in(doc, path, value)))
    assert any(error in e and (error != "unknown field" or str(path[-1]) in e)
               for e in result["errors"]), result


def test_strict_decoding_rejects_a_duplicate_key(kubecheck):
    text = GUIDE_PATH.read_text().replace("  name: worker\n", "  name: worker\n  name: other\n", 1)
    result = kubecheck.check(text=text)[0]
    assert any("already set" in e for e in result["errors"]), result


def test_a_broken_manifest_fails_after_the_build_too(kubecheck, tmp_path):
    # kustomize carries an unknown field through to its output, where the
    # decoding finds it.
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy, symlinks=True)
    worker = copy / "base" / "worker.yaml"
    docs = load_docs(worker.read_text())
    set_in(docs[0], CONTAINER + ("resource",), {"limits": {"cpu": "1"}})
    worker.write_text(yaml.safe_dump_all(docs))
    results = kubecheck.check(text=kubecheck.build(copy / "overlays" / "prod"))
    [bad] = [r for r in results if r["errors"]]
    assert (bad["kind"], bad["name"]) == ("Deployment", "worker")
    assert bad["errors"] == ['unknown field "spec.template.spec.containers[0].resource"']


@pytest.mark.skipif(not shutil.which("yamllint"), reason="yamllint not installed")
def test_yamllint():
    r = subprocess.run(["yamllint", "-s", str(K8S)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


# ---------------------------------------------------------------- names and namespaces


@pytest.mark.parametrize("build", BUILDS)
def test_names_and_labels_are_the_guides(builds, build):
    docs = builds[build]
    worker = deployment(docs, "worker")
    assert worker["spec"]["selector"] == {"matchLabels": {"app": "worker"}}
    assert worker["spec"]["template"]["metadata"]["labels"]["app"] == "worker"
    # `kubectl get hpa worker-hpa`: the HPA, or under KEDA the HPA it makes.
    if build in KEDA_BUILDS:
        so = one(docs, "ScaledObject", "worker")
        assert so["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["name"] == "worker-hpa"
    else:
        one(docs, "HorizontalPodAutoscaler", "worker-hpa")
    api = deployment(docs, "api")
    assert api["spec"]["template"]["metadata"]["labels"]["app"] == "api"
    svc = one(docs, "Service", "api")
    assert svc["spec"]["selector"] == {"app": "api"}
    assert [p["port"] for p in svc["spec"]["ports"]] == [8080]


@pytest.mark.parametrize("env", ENVS)
def test_overlays_put_everything_in_their_namespace(builds, env):
    for build in (env, *(f"{env}+{variant}" for variant in KEDA_VARIANTS)):
        docs = builds[build]
        assert [d["metadata"]["name"] for d in find(docs, "Namespace")] == [env]
        for d in docs:
            if d["kind"] in NAMESPACED_KINDS:
                assert d["metadata"].get("namespace") == env, f"{d['kind']} {d['metadata']['name']}"
            else:
                assert d["kind"] == "Namespace", f"unexpected kind {d['kind']}"


def test_the_base_sets_no_namespace(builds):
    for d in builds["base"]:
        assert "namespace" not in d["metadata"], d["metadata"]["name"]
    assert not find(builds["base"], "Namespace")


@pytest.mark.parametrize("env", ENVS)
def test_overlays_pin_an_image_tag(builds, env):
    tags = set()
    for name in ("worker", "api"):
        image = container(deployment(builds[env], name))["image"]
        repo, _, tag = image.rpartition(":")
        assert repo == STRATQ_IMAGE, image
        assert tag and tag != "latest", image
        tags.add(tag)
    assert len(tags) == 1, "the API and the workers must run the same build"


# ---------------------------------------------------------------- the HPA


@pytest.mark.parametrize("build", DEFAULT_BUILDS)
def test_hpa_is_the_guides(builds, build):
    hpa = one(builds[build], "HorizontalPodAutoscaler", "worker-hpa")
    assert hpa["apiVersion"] == "autoscaling/v2"
    spec = hpa["spec"]
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1", "kind": "Deployment", "name": "worker",
    }
    assert (spec["minReplicas"], spec["maxReplicas"]) == (GUIDE_MIN, GUIDE_MAX)
    targets = {
        m["resource"]["name"]: (m["type"], m["resource"]["target"]) for m in spec["metrics"]
    }
    assert targets == {
        "cpu": ("Resource", {"type": "Utilization", "averageUtilization": GUIDE_CPU_TARGET}),
        "memory": ("Resource", {"type": "Utilization", "averageUtilization": GUIDE_MEMORY_TARGET}),
    }
    check_guide_behavior(spec["behavior"])


def check_guide_behavior(behavior):
    up, down = behavior["scaleUp"], behavior["scaleDown"]
    # "Scale up: 100% increase every 15 seconds"
    assert up["policies"] == [{"type": "Percent", "value": 100, "periodSeconds": 15}]
    assert up.get("stabilizationWindowSeconds", 0) == 0
    # "Scale down: 50% decrease every 60 seconds (with 5-minute stabilization)"
    assert down["policies"] == [{"type": "Percent", "value": 50, "periodSeconds": 60}]
    assert down["stabilizationWindowSeconds"] == 300
    assert up.get("selectPolicy", "Max") == down.get("selectPolicy", "Max") == "Max"


@pytest.mark.parametrize("build", BUILDS)
def test_one_autoscaler_owns_the_worker_count_and_apply_does_not_fight_it(builds, build):
    docs = builds[build]
    owners = [
        f"HPA {d['metadata']['name']}"
        for d in find(docs, "HorizontalPodAutoscaler")
        if d["spec"]["scaleTargetRef"]["kind"] == "Deployment"
        and d["spec"]["scaleTargetRef"]["name"] == "worker"
    ] + [
        f"ScaledObject {d['metadata']['name']}"
        for d in find(docs, "ScaledObject")
        if d["spec"]["scaleTargetRef"]["name"] == "worker"
        and d["spec"]["scaleTargetRef"].get("kind", "Deployment") == "Deployment"
    ]
    assert len(owners) == 1, f"the worker Deployment must have exactly one autoscaler: {owners}"
    # No replica count in the applied Deployment: `kubectl apply` would reset
    # the autoscaler's count to it on every deploy (docs/scaling.md).
    assert "replicas" not in deployment(docs, "worker")["spec"]
    # The API has no autoscaler, so its count is in the manifest.
    assert not any(
        d["spec"]["scaleTargetRef"]["name"] == "api"
        for d in find(docs, "HorizontalPodAutoscaler") + find(docs, "ScaledObject")
    )
    assert deployment(docs, "api")["spec"]["replicas"] >= 2


def test_keda_is_not_in_the_default_builds(builds):
    for build in DEFAULT_BUILDS:
        kinds = {d["kind"] for d in builds[build]}
        assert not kinds & {"ScaledObject", "TriggerAuthentication"}, build


# ---------------------------------------------------------------- resources


def worker_resources(docs):
    return container(deployment(docs, "worker"), "worker")["resources"]


@pytest.mark.parametrize("build", BUILDS)
def test_worker_limits_are_the_guides(builds, build):
    limits = worker_resources(builds[build])["limits"]
    assert cpu_m(limits["cpu"]) == GUIDE_CPU_LIMIT_M
    assert quantity(limits["memory"]) == GUIDE_MEMORY_LIMIT


@pytest.mark.parametrize("build", BUILDS)
def test_worker_requests_let_the_hpa_targets_fire_for_one_job(builds, build):
    docs = builds[build]
    res = worker_resources(docs)
    req_cpu, req_mem = cpu_m(res["requests"]["cpu"]), quantity(res["requests"]["memory"])
    assert req_cpu <= cpu_m(res["limits"]["cpu"])
    assert req_mem <= quantity(res["limits"]["memory"])
    # Utilisation is usage / request. One busy single-threaded job must read
    # above the CPU target, or the HPA never adds a worker: against the 2-CPU
    # limit as request it would read 50%.
    assert 100 * ONE_JOB_CPU_M / req_cpu > GUIDE_CPU_TARGET
    assert 100 * ONE_JOB_CPU_M / GUIDE_CPU_LIMIT_M < GUIDE_CPU_TARGET  # why requests < limits
    # An idle pool must stay well under the memory target, or the HPA would
    # hold it at its maximum; a worker running a large job must cross it.
    assert 100 * IDLE_WORKER_BYTES / req_mem < GUIDE_MEMORY_TARGET / 2
    assert 100 * (IDLE_WORKER_BYTES + LARGE_JOB_BYTES) / req_mem > GUIDE_MEMORY_TARGET
    # The largest job a worker accepts fits under its limit next to the idle
    # worker and a full /tmp (a tmpfs, charged to the same limit), so it ends
    # memory_exceeded rather than the worker OOM-killed.
    c = container(deployment(docs, "worker"), "worker")
    max_job = env_value(docs, c, "STRATQ_MAX_MEMORY_MB")
    max_job = max_job or stratq_settings()["STRATQ_MAX_MEMORY_MB"][1]
    tmpfs = memory_volume_bytes(pod_spec(docs, "worker"), c)
    assert IDLE_WORKER_BYTES + int(max_job) * 1024**2 + tmpfs < quantity(res["limits"]["memory"])


def test_scaling_md_states_the_numbers_in_the_manifests(builds):
    text = SCALING_MD.read_text()
    res = worker_resources(builds["prod"])
    for value in (res["requests"]["cpu"], res["requests"]["memory"]):
        assert str(value) in text, f"docs/scaling.md does not mention the request {value}"
    for word in ("worker-hpa", "maxUnavailable: 1", GUIDE_QUEUE, "scale-workers.sh",
                 "monitor-workers.sh", "terminationGracePeriodSeconds", "components/keda"):
        assert word in text, f"docs/scaling.md does not mention {word}"


# ---------------------------------------------------------------- probes and drain


@pytest.mark.parametrize("build", BUILDS)
def test_worker_probes_use_the_health_port(builds, build):
    docs = builds[build]
    c = container(deployment(docs, "worker"), "worker")
    port = int(env_value(docs, c, "STRATQ_HEALTH_PORT"))
    assert port == HEALTH_PORT
    named = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert named.get("health") == port
    paths = {}
    for probe in PROBES:
        get = c[probe]["httpGet"]
        assert probe_port(c, get) == port, probe
        paths[probe] = get["path"]
    assert paths["readinessProbe"] == "/readyz"
    # Liveness must not depend on Redis (/healthz does): a worker restarted
    # during a Redis outage would lose the results it holds for it.
    assert paths["livenessProbe"] == "/livez"


def api_open_get_paths():
    """The GET routes the API serves without a token (src/api/router.c)."""
    routes = re.findall(r'\{ROUTE_\w+,\s*"GET",\s*"([^"]+)",\s*0\}', API_ROUTES.read_text())
    assert "/healthz" in routes, "src/api/router.c not parsed"
    return set(routes)


@pytest.mark.parametrize("build", BUILDS)
def test_api_probes_use_its_port(builds, build):
    docs = builds[build]
    c = container(deployment(docs, "api"))
    port = int(env_value(docs, c, "STRATQ_API_PORT"))
    probes = {name: c[name] for name in PROBES if name in c}
    assert {"livenessProbe", "readinessProbe"} <= set(probes)
    for name, probe in probes.items():
        actions = [k for k in ("httpGet", "tcpSocket", "exec", "grpc") if k in probe]
        assert actions in (["httpGet"], ["tcpSocket"]), f"{name}: {actions}"
        action = probe[actions[0]]
        assert probe_port(c, action) == port, name
        if "httpGet" in probe:
            # A route that wants a token would answer 401 to the kubelet.
            assert action["path"] in api_open_get_paths(), name
    assert probes["readinessProbe"]["httpGet"]["path"] == "/readyz"
    # /healthz and /readyz both answer 503 while Redis is away, and
    # restarting the API would not bring Redis back: liveness is the port.
    assert "tcpSocket" in probes["livenessProbe"]


@pytest.mark.parametrize("build", BUILDS)
def test_grace_period_outlasts_the_drain(builds, build):
    docs = builds[build]
    dep = deployment(docs, "worker")
    c = container(dep, "worker")
    drain = env_value(docs, c, "STRATQ_DRAIN_TIMEOUT_S")
    drain = int(drain if drain is not None else stratq_settings()["STRATQ_DRAIN_TIMEOUT_S"][1])
    grace = dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    # The drain, then writing the result, deregistering and the executor's
    # exit: at least 10 s more.
    assert grace >= drain + 10, f"terminationGracePeriodSeconds {grace} vs drain {drain}"


@pytest.mark.parametrize("build", BUILDS)
def test_every_stratq_setting_exists_and_is_in_bounds(builds, build):
    docs = builds[build]
    settings = stratq_settings()
    for name in ("worker", "api"):
        c = container(deployment(docs, name))
        for var in sorted(v for v in env_names(docs, c) if v.startswith("STRATQ_")):
            assert var in settings, f"{name}: {var} is not a setting in src/common/config.h"
            typ, _, lo, hi = settings[var]
            value = env_value(docs, c, var)
            if typ == "CFG_INT" and isinstance(value, str):
                assert lo <= int(value) <= hi, f"{name}: {var}={value} outside {lo}..{hi}"
    api = container(deployment(docs, "api"))
    assert env_value(docs, api, "STRATQ_API_BIND") == "0.0.0.0"
    assert int(env_value(docs, api, "STRATQ_API_PORT")) == 8080
    assert {p["name"]: p["containerPort"] for p in api["ports"]}["http"] == 8080


# ---------------------------------------------------------------- security


def pod_specs(docs):
    for dep in find(docs, "Deployment"):
        yield dep["metadata"]["name"], dep["spec"]["template"]["spec"]


@pytest.mark.parametrize("build", BUILDS)
def test_pods_are_locked_down(builds, build):
    for name, pod in pod_specs(builds[build]):
        assert pod.get("automountServiceAccountToken") is False, name
        assert not any(pod.get(k) for k in ("hostNetwork", "hostPID", "hostIPC")), name
        assert not any("hostPath" in v for v in pod.get("volumes", [])), name
        for c in pod["containers"] + pod.get("initContainers", []):
            sc = c.get("securityContext", {})
            where = f"{name}/{c['name']}"
            assert effective(pod, c, "runAsNonRoot") is True, where
            assert effective(pod, c, "runAsUser") not in (None, 0), where
            assert sc.get("allowPrivilegeEscalation") is False, where
            assert sc.get("readOnlyRootFilesystem") is True, where
            assert sc.get("capabilities") == {"drop": ["ALL"]}, where
            assert not sc.get("privileged"), where
            assert effective(pod, c, "seccompProfile") == {"type": "RuntimeDefault"}, where


@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("app", STRATQ_APPS)
def test_stratq_pods_run_as_the_images_user(builds, build, app):
    # The Dockerfile's USER, numeric so that runAsNonRoot can check it: the
    # user the container run of the sandbox's layers was made as.
    uid, gid = runtime_user()
    assert uid.isdigit() and gid.isdigit(), (uid, gid)
    pod = pod_spec(builds[build], app)
    for c in pod["containers"]:
        where = f"{app}/{c['name']}"
        assert effective(pod, c, "runAsNonRoot") is True, where
        assert effective(pod, c, "runAsUser") == int(uid), where
        assert effective(pod, c, "runAsGroup") == int(gid), where
    # The group the API's tokens file is readable by, where one is set.
    assert pod["securityContext"].get("fsGroup", int(gid)) == int(gid), app


@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("app", STRATQ_APPS)
def test_a_read_only_root_gets_a_tmpfs_on_tmp(builds, build, app):
    docs = builds[build]
    pod = pod_spec(docs, app)
    c = container(deployment(docs, app))
    assert effective(pod, c, "readOnlyRootFilesystem") is True
    mounts = mounted_volumes(pod, c)
    assert "/tmp" in mounts, f"{app}: a read-only root and no writable /tmp"
    mount, vol = mounts["/tmp"]
    assert not mount.get("readOnly") and not mount.get("subPath"), mount
    # A tmpfs, as Compose's: in the pod's memory and gone with the pod, of
    # the size the container run had, and at most half the container's
    # memory limit (its pages count against it).
    empty = vol.get("emptyDir")
    assert empty is not None, f"{app}: /tmp is {vol}, not an emptyDir"
    assert empty.get("medium") == "Memory", f"{app}: /tmp is not a tmpfs"
    assert quantity(empty.get("sizeLimit", 0)) == TMP_BYTES
    assert 2 * memory_volume_bytes(pod, c) <= quantity(c["resources"]["limits"]["memory"])
    # Everything else it mounts is read-only.
    assert all(m.get("readOnly") for path, (m, _) in mounts.items() if path != "/tmp")
    # TMPDIR (the executor's work directories) and HOME (what Python and the
    # libraries a job imports write to), from the pod or else the image,
    # lie in /tmp.
    image_env = runtime_env()
    for var in ("TMPDIR", "HOME"):
        value = env_value(docs, c, var) or image_env.get(var)
        assert value and (value == "/tmp" or value.startswith("/tmp/")), f"{app}: {var}={value}"


@pytest.mark.parametrize("build", BUILDS)
def test_the_worker_mounts_its_tmp_and_the_redis_tls_files_only(builds, build):
    c = container(deployment(builds[build], "worker"), "worker")
    assert list(mounted_volumes(pod_spec(builds[build], "worker"), c)) == ["/tmp", REDIS_TLS_DIR]


# ---------------------------------------------------------------- secrets


def secret_refs(docs):
    """(object, secret name, key) for every Secret key the build reads."""
    for name, pod in pod_specs(docs):
        for c in pod["containers"]:
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    yield f"{name}/{c['name']} {e['name']}", ref["name"], ref["key"]
            for ef in c.get("envFrom", []):
                assert "secretRef" not in ef, f"{name}: name the keys it reads"
        for v in pod.get("volumes", []):
            if "secret" in v:
                items = v["secret"].get("items")
                assert items, f"{name}: mount only the keys it needs"
                for item in items:
                    yield f"{name} volume {v['name']}", v["secret"]["secretName"], item["key"]
    for ta in find(docs, "TriggerAuthentication"):
        for ref in ta["spec"].get("secretTargetRef", []):
            yield f"TriggerAuthentication {ta['metadata']['name']}", ref["name"], ref["key"]


@pytest.mark.parametrize("build", BUILDS)
def test_every_secret_read_is_in_the_documented_secret(builds, build):
    docs = builds[build]
    keys = set(example_secret()["stringData"])
    refs = list(secret_refs(docs))
    assert refs
    for where, name, key in refs:
        assert name == SECRET_NAME and key in keys, (
            f"{where} reads {name}/{key}: not in secret.example.yaml")
    # No credential is applied from the repository.
    assert not find(docs, "Secret")


@pytest.mark.parametrize("build", BUILDS)
def test_credentials_come_only_from_the_secret(builds, build):
    docs = builds[build]
    # Each its own URL, so that each can be its own ACL user
    # (docs/operations.md, "Redis ACL users").
    for name, key in (("worker", "redis-url"), ("api", "api-redis-url")):
        c = container(deployment(docs, name))
        url = [e for e in c["env"] if e["name"] == "STRATQ_REDIS_URL"]
        assert len(url) == 1 and url[0]["valueFrom"]["secretKeyRef"] == {"name": SECRET_NAME, "key": key}, name
        assert "STRATQ_REDIS_URL" not in {
            k for cm in find(docs, "ConfigMap") for k in cm.get("data", {})
        }
    # The API's tokens file is the Secret's key, mounted read-only.
    api = container(deployment(docs, "api"))
    path = env_value(docs, api, "STRATQ_API_TOKENS_FILE")
    mount = next(m for m in api["volumeMounts"] if path.startswith(m["mountPath"] + "/"))
    assert mount.get("readOnly") is True
    vol = next(
        v for v in pod_spec(docs, "api")["volumes"]
        if v["name"] == mount["name"]
    )
    assert vol["secret"]["items"] == [{"key": "api-tokens", "path": path.rsplit("/", 1)[1]}]
    # Workers never see the API tokens: their one Secret volume holds the
    # Redis TLS files.
    worker = pod_spec(docs, "worker")
    assert [[i["key"] for i in v["secret"]["items"]] for v in worker["volumes"] if "secret" in v] == \
        [list(REDIS_TLS_FILES)]


def test_the_example_secret_points_at_the_cache_service():
    data = example_secret()["stringData"]
    for key in ("redis-url", "api-redis-url"):
        assert re.fullmatch(r"redis://:[^@]+@cache:6379(/\d+)?", data[key]), key
    assert data["redis-address"].startswith("cache.") and data["redis-address"].endswith(":6379")


# ---------------------------------------------------------------- disruptions


@pytest.mark.parametrize("build", BUILDS)
def test_pdb_keeps_two_workers_yet_never_blocks_a_drain(builds, build):
    docs = builds[build]
    pdbs = [p for p in find(docs, "PodDisruptionBudget")
            if selects(p["spec"]["selector"], {"app": "worker"})]
    assert [p["metadata"]["name"] for p in pdbs] == ["worker-pdb"]
    spec = pdbs[0]["spec"]
    assert spec == {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "worker"}}}
    for n in range(GUIDE_MIN, GUIDE_MAX + 1):
        allowed, desired = pdb_disruptions_allowed(spec, n, n)
        # A drain always makes progress, one worker at a time ...
        assert allowed >= 1, f"{n} workers: eviction refused, a node drain would hang"
        assert allowed == 1, f"{n} workers: more than one evicted at once"
        # ... and from 3 workers up, at least 2 keep running.
        if n >= 3:
            assert desired >= 2, f"{n} workers: fewer than 2 kept"
    # Why not minAvailable: 2: at the HPA's floor it refuses every eviction.
    assert pdb_disruptions_allowed({"minAvailable": 2}, GUIDE_MIN, GUIDE_MIN)[0] == 0


# ---------------------------------------------------------------- network


def is_redis_peer(peer):
    return peer == {"podSelector": {"matchLabels": {"app": "cache"}}}


def is_sentinel_peer(peer):
    return peer == {"podSelector": {"matchLabels": {"app": "sentinel"}}}


def is_dns_peer(peer):
    return peer == {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
    }


def rule_ports(rule):
    return {(p.get("protocol", "TCP"), p["port"]) for p in rule.get("ports", [])}


@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("app", ["worker", "api"])
def test_pods_reach_only_redis_and_dns(builds, build, app):
    docs = builds[build]
    labels = deployment(docs, app)["spec"]["template"]["metadata"]["labels"]
    policies = [p for p in find(docs, "NetworkPolicy") if selects(p["spec"]["podSelector"], labels)]
    assert policies, f"no NetworkPolicy selects the {app} pods"
    egress_policies = [p for p in policies if "Egress" in p["spec"].get("policyTypes", [])]
    assert egress_policies, f"no policy restricts the {app} pods' egress"
    kinds = set()
    for p in egress_policies:
        for rule in p["spec"].get("egress", []):
            peers, ports = rule.get("to"), rule_ports(rule)
            assert peers and ports, (
                f"{p['metadata']['name']}: a rule without peers or ports allows everything")
            if all(is_redis_peer(x) for x in peers):
                assert ports == {("TCP", 6379)}
                kinds.add("redis")
            elif all(is_sentinel_peer(x) for x in peers):
                assert ports == {("TCP", 26379)}
                kinds.add("sentinel")
            elif all(is_dns_peer(x) for x in peers):
                assert ports <= {("UDP", 53), ("TCP", 53)}
                kinds.add("dns")
            else:
                pytest.fail(f"{p['metadata']['name']}: egress to {peers} is neither Redis nor DNS")
    # The sentinels' port only where components/sentinel is in (docs/deploy.md).
    assert kinds == ({"redis", "dns", "sentinel"} if "sentinel" in build else {"redis", "dns"})
    # In: only the pod's own serving port.
    own = {"worker": HEALTH_PORT, "api": 8080}[app]
    for p in policies:
        if "Ingress" in p["spec"].get("policyTypes", []):
            for rule in p["spec"].get("ingress", []):
                assert rule_ports(rule) == {("TCP", own)}


def test_stage_runs_its_redis_as_the_service_cache(builds):
    docs = builds["stage"]
    svc = one(docs, "Service", "cache")
    assert svc["spec"]["selector"] == {"app": "cache"}
    assert [p["port"] for p in svc["spec"]["ports"]] == [6379]
    cache = deployment(docs, "cache")
    assert cache["spec"]["template"]["metadata"]["labels"]["app"] == "cache"
    assert cache["spec"]["replicas"] == 1
    # Redis opens no connection, and only the stratq pods and KEDA reach it.
    pol = one(docs, "NetworkPolicy", "cache")
    assert pol["spec"]["egress"] == [] and "Egress" in pol["spec"]["policyTypes"]
    # Prod brings its own Redis.
    assert not find(builds["prod"], "Deployment", "cache")


# ---------------------------------------------------------------- KEDA


@pytest.mark.parametrize("build", KEDA_BUILDS)
def test_keda_scales_on_the_queue_length(builds, build):
    docs = builds[build]
    so = one(docs, "ScaledObject", "worker")
    spec = so["spec"]
    assert spec["scaleTargetRef"]["name"] == "worker"
    assert spec["scaleTargetRef"].get("kind", "Deployment") == "Deployment"
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (GUIDE_MIN, GUIDE_MAX)
    check_guide_behavior(spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"])
    [trigger] = spec["triggers"]
    assert trigger["type"] == ("redis-sentinel" if "sentinel" in build else "redis")
    assert trigger.get("metricType", "AverageValue") == "AverageValue"
    meta = trigger["metadata"]
    assert meta["listName"] == GUIDE_QUEUE
    assert meta["listLength"] == str(GUIDE_QUEUE_PER_WORKER)
    # The workers consume the list KEDA counts.
    for name in ("worker", "api"):
        c = container(deployment(docs, name))
        queue = env_value(docs, c, "STRATQ_QUEUE") or stratq_settings()["STRATQ_QUEUE"][1]
        assert queue == meta["listName"]
    # No address, user or password in the trigger: all from the Secret.
    assert not {"address", "addresses", "host", "hosts", "username", "password", "addressFromEnv",
                "addressesFromEnv", "usernameFromEnv", "passwordFromEnv"} & set(meta)
    ta = one(docs, "TriggerAuthentication", trigger["authenticationRef"]["name"])
    params = {r["parameter"] for r in ta["spec"]["secretTargetRef"]}
    address = "addresses" if "sentinel" in build else "address"
    assert {address, "username", "password"} <= params
    # The CPU/memory HPA is gone from the build: KEDA makes its own.
    assert not find(docs, "HorizontalPodAutoscaler")


# ---------------------------------------------------------------- production Redis


REDIS_TLS_DIR = "/etc/stratq/redis-tls"
# The Secret's TLS keys and the settings that name them (docs/deploy.md,
# "Production Redis").
REDIS_TLS_FILES = {"ca.crt": "STRATQ_REDIS_CACERT", "tls.crt": "STRATQ_REDIS_CERT",
                   "tls.key": "STRATQ_REDIS_KEY"}
# What the sandbox's Landlock ruleset lets a job read (src/worker/sandbox.c),
# and the harness (Dockerfile): the key must be nowhere below these.
JOB_READABLE = ("/usr", "/lib", "/lib64", "/etc/ld.so.cache", "/etc/localtime", "/sys/devices/system/cpu",
                "/dev", "/tmp", "/usr/local/share/stratq")

# The parameters KEDA's Redis scalers define (keda.sh/docs, "Redis Lists"
# and "Redis Lists (supports Redis Sentinel)", KEDA 2.13 and newer: the TLS
# ones), in the trigger's metadata and in a TriggerAuthentication.
KEDA_REDIS_METADATA = {
    "redis": {"address", "host", "port", "usernameFromEnv", "passwordFromEnv", "listName",
              "listLength", "activationListLength", "enableTLS", "unsafeSsl", "databaseIndex",
              "addressFromEnv", "hostFromEnv", "portFromEnv"},
    "redis-sentinel": {"addresses", "hosts", "ports", "usernameFromEnv", "passwordFromEnv",
                       "sentinelUsernameFromEnv", "sentinelPasswordFromEnv", "sentinelMaster",
                       "sentinelMasterFromEnv", "listName", "listLength", "activationListLength",
                       "enableTLS", "unsafeSsl", "databaseIndex", "addressesFromEnv", "hostsFromEnv",
                       "portsFromEnv"},
}
KEDA_TLS_AUTH = {"tls", "ca", "cert", "key", "keyPassword"}
KEDA_REDIS_AUTH = {
    "redis": {"address", "host", "port", "username", "password"} | KEDA_TLS_AUTH,
    "redis-sentinel": {"addresses", "hosts", "ports", "sentinelMaster", "username", "password",
                       "sentinelUsername", "sentinelPassword"} | KEDA_TLS_AUTH,
}


def test_the_example_secret_has_the_production_redis_keys():
    data = example_secret()["stringData"]
    assert set(REDIS_TLS_FILES) <= set(data)
    assert "BEGIN CERTIFICATE" in data["ca.crt"] and "BEGIN CERTIFICATE" in data["tls.crt"]
    assert "PRIVATE KEY" in data["tls.key"]
    # What KEDA's `tls` parameter accepts: enable or disable.
    assert data["redis-tls"] == "enable"
    assert all(a.rpartition(":")[2].isdigit() for a in data["redis-sentinel-addresses"].split(","))
    # The comment documents every key.
    text = (K8S / "secret.example.yaml").read_text()
    comment = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    for key in data:
        assert re.search(rf"^#   {re.escape(key)}\b", comment, re.M), f"{key} is not described"


@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("app", STRATQ_APPS)
def test_stratq_pods_get_the_redis_tls_files_when_the_secret_has_them(builds, build, app):
    docs = builds[build]
    pod = pod_spec(docs, app)
    c = container(deployment(docs, app))
    mount, vol = mounted_volumes(pod, c)[REDIS_TLS_DIR]
    assert mount.get("readOnly") is True and not mount.get("subPath")
    secret = vol["secret"]
    # Each key only when the Secret has it: a Redis without TLS, or without
    # client certificates, needs none of them, and the pod still starts.
    assert secret["secretName"] == SECRET_NAME and secret.get("optional") is True
    assert {i["key"]: i["path"] for i in secret["items"]} == {k: k for k in REDIS_TLS_FILES}
    # Readable by the container's group (fsGroup), not by others.
    mode = secret.get("defaultMode", 0o644)
    assert mode & 0o007 == 0 and mode & 0o040, oct(mode)
    assert pod["securityContext"].get("fsGroup") == effective(pod, c, "runAsGroup")
    # Each setting names its file in the mount.
    for key, setting in REDIS_TLS_FILES.items():
        assert env_value(docs, c, setting) == f"{REDIS_TLS_DIR}/{key}", setting
    # Job code runs in the worker's pod, as the worker's uid: Landlock keeps
    # it out of the key only if the key is outside what jobs may read.
    for readable in JOB_READABLE:
        assert not (REDIS_TLS_DIR + "/").startswith(readable.rstrip("/") + "/"), readable
    assert "landlock" in env_value(docs, c, "STRATQ_SANDBOX_REQUIRE").split(",")
    # The sentinels' password, only where the Secret has one.
    ref = next(e for e in c["env"] if e["name"] == "STRATQ_REDIS_SENTINEL_PASSWORD")
    assert ref["valueFrom"]["secretKeyRef"] == {"name": SECRET_NAME, "key": "redis-sentinel-password",
                                                "optional": True}


@pytest.mark.parametrize("build", KEDA_BUILDS)
def test_keda_uses_only_parameters_its_redis_scalers_define(builds, build):
    docs = builds[build]
    [trigger] = one(docs, "ScaledObject", "worker")["spec"]["triggers"]
    kind = trigger["type"]
    assert set(trigger["metadata"]) <= KEDA_REDIS_METADATA[kind], trigger["metadata"]
    ta = one(docs, "TriggerAuthentication", trigger["authenticationRef"]["name"])
    refs = {r["parameter"]: r for r in ta["spec"]["secretTargetRef"]}
    assert len(refs) == len(ta["spec"]["secretTargetRef"]), "a parameter given twice"
    assert set(refs) <= KEDA_REDIS_AUTH[kind], sorted(refs)
    keys = set(example_secret()["stringData"])
    assert all(r["name"] == SECRET_NAME and r["key"] in keys for r in refs.values())
    assert refs["username"]["key"] == "redis-username" and refs["password"]["key"] == "redis-password"
    if kind == "redis-sentinel":
        assert refs["addresses"]["key"] == "redis-sentinel-addresses"
        assert refs["sentinelPassword"]["key"] == "redis-sentinel-password"
        assert "address" not in refs
        # The primary KEDA asks the sentinels for is the one stratq uses.
        for name in STRATQ_APPS:
            c = container(deployment(docs, name))
            master = env_value(docs, c, "STRATQ_REDIS_SENTINEL_MASTER") or \
                stratq_settings()["STRATQ_REDIS_SENTINEL_MASTER"][1]
            assert trigger["metadata"]["sentinelMaster"] == master
    else:
        assert refs["address"]["key"] == "redis-address"


@pytest.mark.parametrize("build", KEDA_BUILDS)
def test_keda_checks_the_redis_certificate_with_the_pods_files(builds, build):
    docs = builds[build]
    [trigger] = one(docs, "ScaledObject", "worker")["spec"]["triggers"]
    ta = one(docs, "TriggerAuthentication", trigger["authenticationRef"]["name"])
    refs = {r["parameter"]: r["key"] for r in ta["spec"]["secretTargetRef"]}
    # KEDA refuses `tls` in the TriggerAuthentication together with
    # enableTLS or unsafeSsl in the trigger; unsafeSsl would skip the check.
    assert not {"enableTLS", "unsafeSsl"} & set(trigger["metadata"])
    if "tls" not in build:
        assert not KEDA_TLS_AUTH & set(refs)
        return
    assert refs["tls"] == "redis-tls" and example_secret()["stringData"]["redis-tls"] == "enable"
    # The CA and the client certificate the API and the workers mount.
    worker = pod_spec(docs, "worker")
    [tls_volume] = [v for v in worker["volumes"] if "secret" in v]
    mounted = {i["key"] for i in tls_volume["secret"]["items"]}
    assert {refs["ca"], refs["cert"], refs["key"]} == mounted == set(REDIS_TLS_FILES)
    assert (refs["ca"], refs["cert"], refs["key"]) == ("ca.crt", "tls.crt", "tls.key")
