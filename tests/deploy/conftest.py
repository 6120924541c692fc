"""Shared fixtures and helpers of the deployment tests (tests/deploy/): the
kubecheck tool and the Dockerfile, parsed.

They check files, not running services: nothing here needs a Docker engine,
a cluster, kubectl or any file outside the repository. Run them with

    /usr/bin/python3 -m pytest -q tests/deploy

The Kubernetes manifests are built and checked by kubecheck, a small Go
program in tests/deploy/kubecheck: kustomize's own library builds the
overlays, and every object is decoded strictly into the official Kubernetes
and KEDA Go types. It is built once per session into build/deploy/kubecheck
with the Go toolchain in $GO, else `go` on PATH (Debian's golang-go); its
modules come from the Go module proxy on the first build and from Go's
module cache after that.
"""

import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
KUBECHECK_SRC = REPO / "tests" / "deploy" / "kubecheck"
KUBECHECK_BIN = REPO / "build" / "deploy" / "kubecheck"
DOCKERFILE = REPO / "Dockerfile"


@pytest.fixture(scope="session")
def repo():
    """The work tree's root."""
    return REPO


# The image as the Dockerfile builds it: what the Compose stack and the
# Kubernetes manifests run (test_compose.py, test_k8s.py).


def parse_dockerfile(text):
    """[(INSTRUCTION, args)] with continuation lines joined and comments
    (including those between continuation lines) dropped."""
    out, cur = [], ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") or (not cur and not line.strip()):
            continue
        if line.rstrip().endswith("\\"):
            cur += line.rstrip()[:-1] + " "
            continue
        cur += line
        if cur.strip():
            word, _, args = cur.strip().partition(" ")
            out.append((word.upper(), args.strip()))
        cur = ""
    assert not cur, "Dockerfile ends inside a continuation line"
    return out


def stages(instructions):
    """[(FROM args, [instructions of the stage])]."""
    result = []
    for word, args in instructions:
        if word == "FROM":
            result.append((args, []))
        else:
            assert result or word in ("ARG",), f"{word} before the first FROM"
            if result:
                result[-1][1].append((word, args))
    return result


def dockerfile():
    return parse_dockerfile(DOCKERFILE.read_text())


def runtime_env():
    """The ENV of the Dockerfile's runtime (last) stage."""
    env = {}
    for word, args in stages(dockerfile())[-1][1]:
        if word == "ENV":
            for tok in shlex.split(args):
                k, _, v = tok.partition("=")
                env[k] = v
    return env


def runtime_user():
    """(uid, gid) of the runtime stage's last USER, as written; gid is ""
    when the USER names none."""
    users = [a for w, a in stages(dockerfile())[-1][1] if w == "USER"]
    assert users, "the Dockerfile's runtime stage sets no USER"
    uid, _, gid = users[-1].partition(":")
    return uid, gid


class Kubecheck:
    """tests/deploy/kubecheck, built: `build` and `check` as its doc says."""

    def __init__(self, exe):
        self.exe = str(exe)

    def build(self, directory):
        """The YAML `kubectl kustomize DIRECTORY` would print."""
        r = subprocess.run([self.exe, "build", str(directory)],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, f"kustomize build of {directory} failed:\n{r.stderr}"
        return r.stdout

    def check(self, *paths, text=None):
        """One result per YAML document of the files, or of `text` when no
        file is given: {"file", "index", "apiVersion", "kind", "name",
        "errors"}, errors empty when the document decodes strictly."""
        args = [str(p) for p in paths] or ["-"]
        r = subprocess.run([self.exe, "check", *args], input=text,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode in (0, 1), f"kubecheck check {' '.join(args)}:\n{r.stderr}"
        results = json.loads(r.stdout)
        assert (r.returncode == 1) == any(x["errors"] for x in results), r.stdout
        return results


@pytest.fixture(scope="session")
def kubecheck():
    """Builds tests/deploy/kubecheck once per session; fails (does not skip)
    without a Go toolchain, so that no check passes by not running."""
    go = os.environ.get("GO") or "go"
    exe = shutil.which(go)
    if exe is None:
        pytest.fail(f"no Go toolchain ({go!r} not found): tests/deploy builds "
                    f"tests/deploy/kubecheck with it. Install Debian's golang-go "
                    f"(apt-get install golang-go), or set GO to a go binary")
    KUBECHECK_BIN.parent.mkdir(parents=True, exist_ok=True)
    r = subprocess.run([exe, "build", "-buildvcs=false", "-o", str(KUBECHECK_BIN), "."],
                       cwd=KUBECHECK_SRC, capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        pytest.fail(f"building tests/deploy/kubecheck with {exe} failed (its modules come "
                    f"from the Go module proxy, $GOPROXY):\n{r.stderr}")
    return Kubecheck(KUBECHECK_BIN)
