"""docs/openapi.yaml against the server's routes and against itself.

The routes the server answers come from ``stratq api --routes`` (one
"METHOD PATTERN" line per route, patterns with ``{id}``), which prints the
router's table without starting the server. The file must describe exactly
that set, and be structurally sound OpenAPI 3.0: every operation has
responses, every path parameter is declared, every $ref resolves.
"""

import re
import subprocess

import pytest
import yaml

from conftest import REPO_ROOT, STRATQ_BIN, require_binary

OPENAPI = REPO_ROOT / "docs" / "openapi.yaml"
API_MD = REPO_ROOT / "docs" / "api.md"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# The dashboard's static files (GET /, GET /ui/{file}) hold no data and need no token.
UNAUTHENTICATED = {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/"), ("GET", "/ui/{file}")}


@pytest.fixture(scope="module")
def spec():
    with open(OPENAPI) as f:
        doc = yaml.safe_load(f)
    assert isinstance(doc, dict), f"{OPENAPI} is not a YAML mapping"
    return doc


def operations(spec):
    """[(METHOD, path, path_item, operation)] for every operation."""
    out = []
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method in item:
                out.append((method.upper(), path, item, item[method]))
    return out


def resolve(spec, node):
    """Follow a local $ref ("#/a/b") to its target; other nodes as they are."""
    seen = set()
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), f"only local refs are used, not {ref!r}"
        assert ref not in seen, f"$ref cycle through {ref}"
        seen.add(ref)
        target = spec
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            assert isinstance(target, dict) and part in target, f"$ref {ref} does not resolve"
            target = target[part]
        node = target
    return node


def server_routes():
    require_binary()
    res = subprocess.run(
        [str(STRATQ_BIN), "api", "--routes"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert res.returncode == 0, (
        f"`stratq api --routes` exited {res.returncode}\n--- stdout\n{res.stdout}\n--- stderr\n{res.stderr}"
    )
    routes = set()
    for line in res.stdout.splitlines():
        if not line.strip():
            continue
        parts = line.split()
        assert len(parts) == 2, f"`stratq api --routes` line is not 'METHOD PATTERN': {line!r}"
        routes.add((parts[0], parts[1]))
    assert routes, f"`stratq api --routes` printed no routes\n{res.stderr}"
    return routes


def test_routes_match_the_server(spec):
    documented = {(m, p) for m, p, _, _ in operations(spec)}
    served = server_routes()
    assert documented == served, (
        f"served but not in openapi.yaml: {sorted(served - documented)}\n"
        f"in openapi.yaml but not served: {sorted(documented - served)}"
    )


def test_api_md_lists_the_same_routes(spec):
    """The route table at the top of docs/api.md is the same set."""
    rows = re.findall(r"^\| (GET|POST|PUT|DELETE|PATCH) \| \[`([^`]+)`\]", API_MD.read_text(), re.M)
    assert rows, "no route table found in docs/api.md"
    documented = {(m, p) for m, p, _, _ in operations(spec)}
    assert set(rows) == documented, (
        f"only in api.md: {sorted(set(rows) - documented)}; "
        f"only in openapi.yaml: {sorted(documented - set(rows))}"
    )


def test_top_level_structure(spec):
    assert spec.get("openapi") == "3.0.3", spec.get("openapi")
    info = spec.get("info")
    assert isinstance(info, dict) and info.get("title") and info.get("version"), info
    assert isinstance(spec.get("paths"), dict) and spec["paths"], "no paths"
    for path in spec["paths"]:
        assert path.startswith("/"), f"path {path!r} must start with /"
    scheme = spec["components"]["securitySchemes"]["bearerAuth"]
    assert scheme["type"] == "http" and scheme["scheme"].lower() == "bearer", scheme
    assert spec.get("security") == [{"bearerAuth": []}], spec.get("security")


def test_every_ref_resolves(spec):
    def walk(node, where):
        if isinstance(node, dict):
            if "$ref" in node:
                resolve(spec, node)
            for k, v in node.items():
                walk(v, f"{where}/{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{where}/{i}")

    walk(spec, "#")


def test_every_operation_has_responses(spec):
    ids = []
    for method, path, _, op in operations(spec):
        where = f"{method} {path}"
        responses = op.get("responses")
        assert isinstance(responses, dict) and responses, f"{where} has no responses"
        assert any(str(code).startswith("2") for code in responses), f"{where} has no 2xx response"
        for code, resp in responses.items():
            assert re.fullmatch(r"[1-5](\d\d|XX)|default", str(code)), f"{where}: bad response key {code!r}"
            resp = resolve(spec, resp)
            assert resp.get("description"), f"{where} {code} has no description"
            for media, content in (resp.get("content") or {}).items():
                assert "schema" in content, f"{where} {code} {media} has no schema"
            if str(code) in ("400", "401", "403", "404", "409", "413"):
                schema = resolve(spec, resp["content"]["application/json"]["schema"])
                assert "error" in schema.get("properties", {}), f"{where} {code} is not an Error body"
        ids.append(op.get("operationId"))
        if "requestBody" in op:
            body = resolve(spec, op["requestBody"])
            assert body.get("content"), f"{where} requestBody has no content"
    assert all(ids), "every operation has an operationId"
    assert len(ids) == len(set(ids)), f"duplicate operationIds: {ids}"


def test_every_path_parameter_is_declared(spec):
    for method, path, item, op in operations(spec):
        where = f"{method} {path}"
        params = [resolve(spec, p) for p in item.get("parameters", []) + op.get("parameters", [])]
        for p in params:
            assert p.get("name") and p.get("in") in ("path", "query", "header", "cookie"), f"{where}: {p}"
            assert "schema" in p or "content" in p, f"{where}: parameter {p['name']} has no schema"
        own = [resolve(spec, p) for p in op.get("parameters", [])]
        keys = [(p["in"], p["name"]) for p in own]
        assert len(keys) == len(set(keys)), f"{where}: a parameter is declared twice: {keys}"
        in_template = set(re.findall(r"\{([^}]+)\}", path))
        declared = {p["name"] for p in params if p["in"] == "path"}
        assert in_template == declared, f"{where}: template has {in_template}, declared {declared}"
        for p in params:
            if p["in"] == "path":
                assert p.get("required") is True, f"{where}: path parameter {p['name']} must be required"


def test_security_of_each_operation(spec):
    """/healthz, /readyz and the dashboard's files are open (security: []); every other operation
    keeps the global bearer requirement and documents 401 and 403."""
    for method, path, _, op in operations(spec):
        where = f"{method} {path}"
        if (method, path) in UNAUTHENTICATED:
            assert op.get("security") == [], f"{where} must say security: []"
        else:
            assert "security" not in op, f"{where} must use the global bearer security"
            assert {"401", "403"} <= set(map(str, op["responses"])), f"{where} lacks 401/403"
