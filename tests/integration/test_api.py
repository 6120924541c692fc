"""The HTTP API: submitting and reading jobs, request validation, errors,
and the queue view. Routing (404, 405), the body limit and auth are in
test_server.py; the events stream and long polls in test_events.py."""

import json
import os
import textwrap
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml

from conftest import JOB_ID_RE, PREFIX, QUEUE, REPO_ROOT, TERMINAL, waiting_ids

SQUARE = textwrap.dedent(
    """
    def run(ctx):
        n = ctx.params["n"]
        return {"n": n, "square": n * n}
    """
)


def test_submit_runs_job_and_returns_result(stack):
    api = stack.start_api().client
    worker = stack.start_worker()
    spec = {"code": SQUARE, "params": {"n": 12}}
    job_id = api.submit(spec)

    job = api.wait_job(job_id)

    assert job["status"] == "succeeded", job
    assert job["id"] == job_id
    assert job["result"] == {"n": 12, "square": 144}
    assert job["attempts"] == 1
    assert job["spec"]["code"] == SQUARE
    assert job["spec"]["params"] == {"n": 12}
    assert job["worker"] == worker.id
    assert job["created_ms"] <= job["started_ms"] <= job["finished_ms"]
    # The same moment in µs, as an integer: within its ms.
    assert isinstance(job["started_us"], int) and job["started_us"] // 1000 == job["started_ms"], job
    assert job["created_ms"] * 1000 <= job["started_us"] <= job["finished_ms"] * 1000, job
    assert job.get("error") in (None, {}), job
    usage = job["usage"]
    for key in ("wall_ms", "cpu_ms", "max_rss_kb"):
        assert isinstance(usage[key], (int, float)) and usage[key] >= 0, usage
    assert usage["max_rss_kb"] > 0, usage


def test_job_is_queued_until_a_worker_takes_it(stack):
    api = stack.start_api().client
    job_id = api.submit({"code": SQUARE, "params": {"n": 3}})

    job = api.job(job_id)
    assert job["status"] == "queued", job
    assert job.get("attempts") in (0, None), job
    assert job.get("result") is None
    assert isinstance(job["created_ms"], int) and job["created_ms"] > 0

    stack.start_worker()
    job = api.wait_job(job_id)
    assert job["status"] == "succeeded", job
    assert job["result"] == {"n": 3, "square": 9}


def test_stdout_is_captured(stack):
    api = stack.start_api().client
    stack.start_worker()
    code = textwrap.dedent(
        """
        import sys
        def run(ctx):
            print("hello from the job")
            print("line two", ctx.params["x"])
            print("to stderr", file=sys.stderr)
            return 1
        """
    )
    job = api.wait_job(api.submit({"code": code, "params": {"x": 7}}))
    assert job["status"] == "succeeded", job
    assert job["result"] == 1
    assert "hello from the job\nline two 7\n" in job["stdout"]
    assert "to stderr" in job["stderr"]
    assert "to stderr" not in job["stdout"]


def test_entrypoint_and_data(stack):
    api = stack.start_api().client
    stack.start_worker()
    code = textwrap.dedent(
        """
        def run(ctx):
            raise AssertionError("the default entrypoint must not be called")

        def main(ctx):
            return {"total": sum(ctx.data["values"]), "scale": ctx.params.get("scale", 1)}
        """
    )
    spec = {"code": code, "entrypoint": "main", "data": {"values": [1.5, 2.5, 3]}, "params": {}}
    job = api.wait_job(api.submit(spec))
    assert job["status"] == "succeeded", job
    assert job["result"] == {"total": 7.0, "scale": 1}


def test_params_default_to_empty_dict_and_any_json_result(stack):
    api = stack.start_api().client
    stack.start_worker()
    code = "def run(ctx):\n    return [ctx.params, ctx.data, None, True, 1.25, 'x']\n"
    job = api.wait_job(api.submit({"code": code}))
    assert job["status"] == "succeeded", job
    assert job["result"] == [{}, None, None, True, 1.25, "x"]


GOOD = "def run(ctx):\n    return 1\n"

# (request body bytes, words the error message must contain)
BAD_REQUESTS = [
    pytest.param(b'{"code": "x",', ["line", "column"], id="truncated-json"),
    pytest.param(b'{"code": "x" "params": {}}', ["line", "column"], id="missing-comma"),
    pytest.param(b"\n\n  {nope}", ["line 3", "column"], id="garbage-on-line-3"),
    pytest.param(b"{}", ["code"], id="missing-code"),
    pytest.param(b'{"params": {}}', ["code"], id="missing-code-with-params"),
    pytest.param(b'{"code": 5}', ["code", "string"], id="code-not-string"),
    pytest.param(b'{"code": null}', ["code", "string"], id="code-null"),
    pytest.param(json.dumps({"code": GOOD, "timeout_s": "x"}).encode(), ["timeout_s", "number"], id="timeout-string"),
    pytest.param(json.dumps({"code": GOOD, "timeout_s": 0}).encode(), ["timeout_s"], id="timeout-zero"),
    pytest.param(json.dumps({"code": GOOD, "timeout_s": -3}).encode(), ["timeout_s"], id="timeout-negative"),
    pytest.param(json.dumps({"code": GOOD, "params": []}).encode(), ["params", "object"], id="params-array"),
    pytest.param(json.dumps({"code": GOOD, "params": "a=1"}).encode(), ["params", "object"], id="params-string"),
    pytest.param(json.dumps({"code": GOOD, "entrypoint": 3}).encode(), ["entrypoint", "string"], id="entrypoint-number"),
    pytest.param(json.dumps({"code": GOOD, "memory_mb": "big"}).encode(), ["memory_mb", "integer"], id="memory-string"),
    pytest.param(json.dumps({"code": GOOD, "memory_mb": 1.5}).encode(), ["memory_mb", "integer"], id="memory-fraction"),
    pytest.param(json.dumps({"code": GOOD, "memory_mb": 0}).encode(), ["memory_mb"], id="memory-zero"),
    pytest.param(json.dumps({"code": GOOD, "bogus_field": 1}).encode(), ["bogus_field"], id="unknown-field"),
    pytest.param(json.dumps({"code": GOOD, "Code": GOOD}).encode(), ["Code"], id="unknown-field-case"),
    # Counted before parsing: a million values would be ~100 MB of jansson.
    pytest.param(b'{"code": "x", "params": {"a": [' + b",".join([b"{}"] * 1_000_001) + b"]}}",
                 ["more than 1000000 values", "ctx.dataset"], id="too-many-values"),
    pytest.param(b'{"code": "x", "data": ' + b"[" * 70 + b"]" * 70 + b"}",
                 ["deeper than 64 levels"], id="too-deep"),
]


@pytest.mark.parametrize("body,words", BAD_REQUESTS)
def test_bad_job_spec_is_rejected(stack, r, body, words):
    api = stack.start_api().client
    status, resp = api.request("POST", "/v1/jobs", raw=body)
    assert status == 400, (status, resp)
    assert isinstance(resp, dict) and isinstance(resp.get("error"), str), resp
    for word in words:
        assert word in resp["error"], f"{word!r} not in error {resp['error']!r}"
    # Nothing was enqueued.
    assert r.llen(QUEUE) == 0
    assert api.queue()["pending"] == 0


@pytest.mark.parametrize("body", [b"[]", b'"code"', b"42", b"null", b""], ids=["array", "string", "number", "null", "empty"])
def test_non_object_body_is_rejected(stack, r, body):
    api = stack.start_api().client
    status, resp = api.request("POST", "/v1/jobs", raw=body)
    assert status == 400, (status, resp)
    assert isinstance(resp, dict) and isinstance(resp.get("error"), str) and resp["error"], resp
    assert r.llen(QUEUE) == 0


def test_valid_optional_fields_are_accepted_and_echoed(stack):
    api = stack.start_api().client
    spec = {
        "code": GOOD,
        "entrypoint": "run",
        "params": {"a": [1, 2]},
        "data": [{"t": 1}],
        "timeout_s": 2.5,
        "memory_mb": 512,
    }
    job_id = api.submit(spec)
    job = api.job(job_id)
    for key, value in spec.items():
        assert job["spec"][key] == value, (key, job["spec"])


def test_unknown_job_id_is_404(stack):
    api = stack.start_api().client
    for job_id in ("doesnotexist", "0" * 64):
        status, resp = api.get(f"/v1/jobs/{job_id}")
        assert status == 404, (job_id, status, resp)
        assert isinstance(resp, dict) and isinstance(resp.get("error"), str), resp


def test_queue_counts(stack, r):
    api_proc = stack.start_api()
    api = api_proc.client
    q = api.queue()
    for key in ("pending", "processing", "scheduled", "dead", "workers"):
        assert q[key] == 0, q
    # The run-time and wait histograms of GET /metrics, in ms: empty yet.
    for key in ("run", "wait"):
        h = q["histograms"][key]
        assert h["count"] == h["sum_ms"] == 0 and h["counts"] == [0] * len(h["le_ms"]), q
        assert len(h["le_ms"]) == 16 and h["le_ms"] == sorted(h["le_ms"]), q

    # The guide's advice from this one reading (src/common/advice.c).
    assert q["advice"]["action"] == "hold", q
    assert q["advice"]["reasons"] == ["queue at 0 now, but utilisation is unknown (no live workers)"], q

    ids = [api.submit({"code": SQUARE, "params": {"n": i}}) for i in range(6)]
    q = api.queue()
    assert q["pending"] == 6, q
    assert q["processing"] == 0, q
    assert q["workers"] == 0, q
    assert r.llen(QUEUE) == 6
    assert sorted(waiting_ids(r)) == sorted(ids)
    assert q["advice"]["wanted"] == "scale_up", q
    assert q["advice"]["reasons"] == ["queue length 6 > 5 now"], q

    stack.start_worker()
    for job_id in ids:
        assert api.wait_job(job_id)["status"] == "succeeded"
    q = api.queue()
    assert q["pending"] == 0, q
    assert q["processing"] == 0, q
    assert q["workers"] == 1, q
    # An idle worker and an empty queue: the numbers call for fewer workers,
    # the guide's floor of 2 holds.
    assert q["advice"]["wanted"] == "scale_down", q
    assert "utilisation 0% < 30%" in q["advice"]["reasons"], q


def test_ids_are_unique(stack):
    api = stack.start_api().client
    ids = [api.submit({"code": GOOD}) for _ in range(50)]
    assert len(set(ids)) == len(ids)
    assert all(JOB_ID_RE.match(i) for i in ids)


# The statuses, in order, and their properties as they were before one
# table owned them: the terminal ones (conftest), retry.lua's, complete.lua's,
# cancel.lua's, and the dashboard's failed page's.
STATUSES = ["queued", "scheduled", "running", "succeeded", "failed", "timeout", "memory_exceeded",
            "cpu_exceeded", "output_exceeded", "crashed", "cancelled", "dead"]
RETRYABLE = TERMINAL - {"succeeded"}
WITH = {
    "terminal": TERMINAL,
    "retryable": RETRYABLE,
    "auto_retry": {"failed", "timeout", "crashed"},
    "cancellable": {"queued", "scheduled", "running"},
    "failure": RETRYABLE - {"cancelled"},
    # Every status but those each job passes through has an index of its own.
    "indexed": set(STATUSES) - {"queued", "running", "succeeded"},
}
PROPS = tuple(WITH)


def get_statuses(api):
    status, body = api.get("/v1/statuses")
    assert status == 200, (status, body)
    return body["statuses"]


def test_statuses_route_lists_every_status_and_its_properties(stack):
    statuses = get_statuses(stack.start_api().client)
    assert [s["name"] for s in statuses] == STATUSES
    for s in statuses:
        assert set(s) == {"name", *PROPS, "meaning"}, s
        assert {p: s[p] for p in PROPS} == {p: s["name"] in WITH[p] for p in PROPS}, s
        assert isinstance(s["meaning"], str) and s["meaning"], s


def test_statuses_route_needs_a_token_when_auth_is_on(stack, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text("secret\n")
    api = stack.start_api(env={"STRATQ_API_TOKENS_FILE": str(tokens)}).client
    assert api.get("/v1/statuses")[0] == 401
    assert api.get("/v1/statuses", headers={"Authorization": "Bearer nope"})[0] == 403
    status, body = api.get("/v1/statuses", headers={"Authorization": "Bearer secret"})
    assert status == 200 and len(body["statuses"]) == len(STATUSES), body


def test_listing_refuses_an_unknown_status_and_names_the_known_ones(stack):
    status, body = stack.start_api().client.get("/v1/jobs?status=bogus")
    assert status == 400, body
    assert f"({', '.join(STATUSES)}) or all" in body["error"], body


def markdown_table(text, heading, first_column):
    """The rows (lists of cells) of the first table after the heading whose
    first column is headed first_column."""
    lines = text.split(heading + "\n", 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_column} |"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split(" | ")])
    return rows


def test_protocol_md_statuses_table_is_the_servers(stack):
    """docs/protocol.md's table of statuses is GET /v1/statuses, row for row;
    docs/openapi.yaml's Status enum names the same statuses in the same order."""
    statuses = get_statuses(stack.start_api().client)
    yes = {True: "yes", False: "no"}
    want = [[f"`{s['name']}`", *(yes[s[p]] for p in PROPS), s["meaning"]] for s in statuses]
    got = markdown_table((REPO_ROOT / "docs" / "protocol.md").read_text(), "### Statuses", "status")
    expected = "\n".join("| " + " | ".join(row) + " |" for row in want)
    assert got == want, f"docs/protocol.md's statuses table should read:\n{expected}"
    spec = yaml.safe_load((REPO_ROOT / "docs" / "openapi.yaml").read_text())
    assert spec["components"]["schemas"]["Status"]["enum"] == [s["name"] for s in statuses]


# --------------------------------------------------------------------------
# Job-controlled JSON is served as stored, not parsed
# --------------------------------------------------------------------------

# How much the API's peak RSS may grow while it serves the GETs below. Each
# GET holds the Redis reply and the response (about twice the stored bytes)
# for as long as it takes to send; parsing them into jansson values, as the
# API did, took it past 600 MB for one GET of the 8 MiB result.
API_PEAK_GROWTH_MB = 100
# ASan keeps freed memory in its quarantine (256 MB by default), and that
# counts in the RSS: with a small one, the peak is about what the API
# itself holds (4 GETs of the result: 196 MB with the default, 40 with 16).
SMALL_QUARANTINE = {"ASAN_OPTIONS": ":".join(
    o for o in (os.environ.get("ASAN_OPTIONS", ""), "quarantine_size_mb=16") if o)}


def vm_kb(pid, field):
    """A size from /proc/PID/status (VmRSS, VmHWM), in kB."""
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def peak_growth_mb(pid, action):
    """What ``action()`` returns, and how far it took the peak RSS of
    ``pid`` above its RSS before (the peak reset first where this user
    may)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
    except PermissionError:
        pass
    before = vm_kb(pid, "VmRSS")
    out = action()
    return out, (vm_kb(pid, "VmHWM") - before) / 1024


def get_raw(url):
    with urllib.request.urlopen(url, timeout=60) as resp:
        return resp.status, resp.read()


def test_a_large_result_is_sent_as_stored_without_parsing(stack, r):
    # An 8 MiB result of 2.8 million empty objects, under the executor's
    # caps, written straight into the job's hash (as a worker leaves it):
    # four GETs at once each get it back byte for byte.
    api = stack.start_api(env=SMALL_QUARANTINE)
    n = (8 * 1024 * 1024 - 1) // 3
    result = b"[" + b",".join([b"{}"] * n) + b"]"
    spec = json.dumps({"code": "def run(ctx):\n    pass\n"}, separators=(",", ":"))
    r.hset(f"{PREFIX}:job:big", mapping={"spec": spec, "status": "succeeded", "created_ms": "1",
                                         "error": "{\"type\":\"none\",\"n\":1.10}",
                                         "result": result})
    expected = b'{"id":"big","status":"succeeded","error":{"type":"none","n":1.10},"result":'
    expected += result + b"}\n"

    def fetch_all():
        with ThreadPoolExecutor(4) as pool:
            return list(pool.map(get_raw, [f"{api.url}/v1/jobs/big/result"] * 4))

    answers, grew_mb = peak_growth_mb(api.pid, fetch_all)
    for status, body in answers:
        assert status == 200 and body == expected, (status, len(body), body[:200])
    assert grew_mb < API_PEAK_GROWTH_MB, f"the API's peak RSS grew by {grew_mb:.0f} MB"
    # The whole record: the stored JSON fields as they are, the rest as before.
    status, body = get_raw(f"{api.url}/v1/jobs/big")
    assert status == 200, status
    head = (b'{"id":"big","status":"succeeded","attempts":null,"created_ms":1,"started_ms":null,'
            b'"finished_ms":null,"worker":null,"spec":' + spec.encode()
            + b',"error":{"type":"none","n":1.10},"stdout":null,"stderr":null,"usage":null,'
            b'"result":')
    assert body == head + result + b"}\n", body[:300]


def test_log_lines_are_sent_as_stored_without_parsing(stack, r):
    # 1,000 log lines of nested fields (about 900 values each), as a worker
    # stores them: GET /logs answers with each line as it is, in the usual
    # shape, without a jansson value per value.
    api = stack.start_api(env=SMALL_QUARANTINE)
    r.hset(f"{PREFIX}:job:logs", mapping={"spec": "{}", "status": "succeeded", "created_ms": "1",
                                          "stdout": "out\n", "stderr": ""})
    lines = []
    for i in range(1000):
        fields = {"step": i, "price": 9203.97, "deep": {"a": {"b": {"c": {
            "rows": [[j, j + 0.25, None] for j in range(225)]}}}}}
        lines.append(json.dumps({"ts_ms": 1700000000000 + i, "msg": f"line {i}", "fields": fields},
                                separators=(",", ":")))
    r.rpush(f"{PREFIX}:job:logs:log", *lines)

    def fetch_all():
        with ThreadPoolExecutor(4) as pool:
            return list(pool.map(get_raw, [f"{api.url}/v1/jobs/logs/logs?log_offset=0"] * 4))

    answers, grew_mb = peak_growth_mb(api.pid, fetch_all)
    expected = ('{"id":"logs","status":"succeeded","stdout":"out\\n","stderr":"",'
                '"stdout_offset":4,"stderr_offset":0,"log":[' + ",".join(lines)
                + '],"log_offset":1000,"done":true}\n').encode()
    for status, body in answers:
        assert status == 200 and body == expected, (status, len(body), body[:300])
    assert grew_mb < API_PEAK_GROWTH_MB, f"the API's peak RSS grew by {grew_mb:.0f} MB"
    # From an offset, and a line that is not JSON (written by something
    # else) comes as a string, as it did.
    r.rpush(f"{PREFIX}:job:logs:log", "not json")
    status, body = api.client.get("/v1/jobs/logs/logs?log_offset=999&stdout_offset=4")
    assert status == 200, body
    assert body["log"] == [json.loads(lines[999]), "not json"] and body["log_offset"] == 1001, body
    assert body["stdout"] == "" and body["stdout_offset"] == 4, body
