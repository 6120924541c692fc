"""The dashboard's static files: GET / and GET /ui/{file} (docs/dashboard.md).

They are embedded in the binary from web/ and served without auth (they hold
no data), each with its Content-Type, a strict Content-Security-Policy,
Cache-Control and an ETag; any other /ui name is a 404, and the router's
405 logic covers them like every other route. The pages themselves are
tested in a real browser by `make browser-test` (tests/browser).
"""

import re
import urllib.error
import urllib.request

import pytest

from conftest import REPO_ROOT

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
WEB = REPO_ROOT / "web"

TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


def fetch(url, method="GET", headers=None):
    """(status, headers, body bytes) without raising on HTTP errors."""
    req = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with _OPENER.open(req, timeout=10) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def web_files():
    return sorted(p for p in WEB.iterdir() if p.suffix in TYPES)


@pytest.fixture
def authed_api(stack, tmp_path):
    """An API with auth on (a tokens file)."""
    tokens = tmp_path / "tokens"
    tokens.write_text("s3cret-token\n")
    return stack.start_api(env={"STRATQ_API_TOKENS_FILE": str(tokens)})


def check_static_headers(headers):
    csp = headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";") if d.strip())
    assert directives["default-src"] == "'self'", csp
    assert directives["script-src"] == "'self'", csp
    assert directives["style-src"] == "'self'", csp
    assert directives["frame-ancestors"] == "'none'", csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, csp
    assert headers["Cache-Control"] == "no-cache"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert re.fullmatch(r'"\d+-\d+"', headers["ETag"]), headers["ETag"]


def test_index_is_served_without_a_token(authed_api):
    status, headers, body = fetch(authed_api.url + "/")
    assert status == 200, body
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    check_static_headers(headers)
    assert body == (WEB / "index.html").read_bytes()
    # The data routes still need the token.
    status, headers, _ = fetch(authed_api.url + "/v1/queue")
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")


def test_every_file_with_its_content_type(authed_api):
    files = web_files()
    assert {"index.html", "app.js", "style.css"} <= {p.name for p in files}
    for path in files:
        status, headers, body = fetch(f"{authed_api.url}/ui/{path.name}")
        assert status == 200, (path.name, body)
        assert headers["Content-Type"] == TYPES[path.suffix], path.name
        check_static_headers(headers)
        assert body == path.read_bytes(), f"/ui/{path.name} is not web/{path.name} (rebuild?)"


def test_the_page_references_only_embedded_files(api):
    """Every /ui/ URL in index.html and every module app.js imports is served."""
    html = (WEB / "index.html").read_text()
    refs = set(re.findall(r'(?:src|href)="(/ui/[^"]+)"', html))
    for js in WEB.glob("*.js"):
        refs |= {"/ui/" + m for m in re.findall(r"from '\./([^']+)'", js.read_text())}
    assert "/ui/app.js" in refs
    for ref in sorted(refs):
        status, _, _ = fetch(api.base_url + ref)
        assert status == 200, ref
    # No inline script or style: the CSP would block them.
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "inline <script> in index.html"
    assert "<style" not in html and " style=" not in html


def test_etag_revalidation(api):
    status, headers, _ = fetch(api.base_url + "/ui/app.js")
    assert status == 200
    status, headers2, body = fetch(api.base_url + "/ui/app.js", headers={"If-None-Match": headers["ETag"]})
    assert status == 304 and body == b""
    status, _, _ = fetch(api.base_url + "/ui/app.js", headers={"If-None-Match": '"0-0"'})
    assert status == 200


@pytest.mark.parametrize(
    "path",
    ["/ui/nope.js", "/ui/index", "/ui/", "/ui", "/ui/.hidden", "/ui/..", "/ui/a/b.js", "/ui/%2e%2e", "/index.html"],
)
def test_unknown_paths_are_404(authed_api, path):
    status, headers, body = fetch(authed_api.url + path)
    assert status == 404, (path, body)
    assert headers["Content-Type"] == "application/json"
    assert b'"error"' in body


@pytest.mark.parametrize("method", ["POST", "DELETE", "PUT"])
def test_other_methods_are_405(api, method):
    for path in ("/", "/ui/app.js"):
        status, headers, _ = fetch(api.base_url + path, method=method)
        assert status == 405, (method, path)
        assert headers["Allow"] == "GET"


def test_routes_are_listed(stack):
    import subprocess

    from conftest import STRATQ_BIN

    out = subprocess.run([str(STRATQ_BIN), "api", "--routes"], capture_output=True, text=True, check=True).stdout
    assert "GET /\n" in out and "GET /ui/{file}\n" in out


def test_the_dashboard_asks_for_the_tenants_and_pauses_the_api_gives(api):
    """The paused banner, the held and backlog cards, the jobs' tenant column
    and the tenant filter (driven in a browser by tests/browser): the page
    reads fields and routes the API has."""
    html = (WEB / "index.html").read_text()
    js = (WEB / "app.js").read_text()
    assert re.search(r'<div id="paused-banner"[^>]*\bhidden\b', html), "no hidden #paused-banner in index.html"
    for used in ("q.paused_tenants", "q.paused", "'held'", "'backlog'", "api('/v1/tenants')",
                 "&tenant=${encodeURIComponent(tenant)}", "tenantLink(j.tenant)"):
        assert used in js, f"app.js no longer has {used}"
    queue = api.queue()
    assert {"held", "backlog", "paused", "paused_tenants"} <= queue.keys(), queue
    job_id = api.submit({"code": "def run(ctx):\n    return 1\n", "tenant": "alice"})
    status, body = api.get("/v1/tenants")
    assert status == 200 and [t["tenant"] for t in body["tenants"]] == ["alice"], body
    status, body = api.get("/v1/jobs?tenant=alice")
    assert status == 200 and [(j["id"], j["tenant"]) for j in body["jobs"]] == [(job_id, "alice")], body
