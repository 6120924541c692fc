"""The stratq CLI against a running API (and, where a job must run, a worker)."""

import json
import runpy
import sys
import textwrap

import pytest

from conftest import EXAMPLES, JOB_ID_RE, REPO_ROOT, Api, describe_run, free_port, parse_json, run_cli

FAILING = textwrap.dedent(
    """
    def run(ctx):
        raise ValueError("no edge today")
    """
)


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture
def api_url(stack):
    return stack.start_api().url


@pytest.fixture
def running(stack):
    """An API and one worker; returns the API process."""
    api_proc = stack.start_api()
    stack.start_worker()
    return api_proc


def test_submit_wait_prints_result(running):
    res = run_cli(
        ["submit", EXAMPLES / "hello.py", "--params", '{"name": "desk"}', "--wait"], running.url
    )
    assert res.returncode == 0, describe_run(res)
    assert "hello desk" in res.stdout, describe_run(res)


def test_submit_wait_json(running):
    res = run_cli(["submit", EXAMPLES / "hello.py", "--wait", "--json"], running.url)
    assert res.returncode == 0, describe_run(res)
    job = parse_json(res)
    assert job["status"] == "succeeded", job
    assert job["result"] == {"greeting": "hello world"}
    assert JOB_ID_RE.match(job["id"])


def test_submit_prints_id_then_status_and_result(running, tmp_path):
    script = write(tmp_path, "square.py", "def run(ctx):\n    return ctx.params['n'] ** 2\n")
    res = run_cli(["submit", script, "--params", '{"n": 9}'], running.url)
    assert res.returncode == 0, describe_run(res)
    job_id = res.stdout.strip()
    assert JOB_ID_RE.match(job_id), describe_run(res)

    job = running.client.wait_job(job_id)
    assert job["status"] == "succeeded" and job["result"] == 81, job

    res = run_cli(["status", job_id], running.url)
    assert res.returncode == 0, describe_run(res)
    assert "succeeded" in res.stdout, describe_run(res)

    res = run_cli(["status", job_id, "--json"], running.url)
    assert res.returncode == 0, describe_run(res)
    rec = parse_json(res)
    assert rec["id"] == job_id and rec["status"] == "succeeded", rec

    res = run_cli(["result", job_id], running.url)
    assert res.returncode == 0, describe_run(res)
    assert "81" in res.stdout, describe_run(res)

    res = run_cli(["result", job_id, "--json"], running.url)
    assert res.returncode == 0, describe_run(res)
    out = parse_json(res)
    # The API's JSON for a job is its record; accept the bare result too.
    assert (out.get("result") if isinstance(out, dict) else out) == 81, out


def test_submit_json_without_wait(api_url):
    res = run_cli(["submit", EXAMPLES / "hello.py", "--json"], api_url)
    assert res.returncode == 0, describe_run(res)
    out = parse_json(res)
    assert out["status"] == "queued", out
    assert JOB_ID_RE.match(out["id"]), out


def test_submit_flags_reach_the_spec(api_url, tmp_path):
    data = write(tmp_path, "in.json", json.dumps({"close": [1.0, 2.5], "symbol": "X"}))
    res = run_cli(
        [
            "submit", EXAMPLES / "hello.py",
            "--params", '{"name": "flags", "k": [1, 2]}',
            "--data", data,
            "--timeout", "2.5",
            "--memory", "300",
            "--json",
        ],
        api_url,
    )
    assert res.returncode == 0, describe_run(res)
    job_id = parse_json(res)["id"]
    spec = Api(api_url).job(job_id)["spec"]
    assert spec["code"] == (EXAMPLES / "hello.py").read_text()
    assert spec["params"] == {"name": "flags", "k": [1, 2]}
    assert spec["data"] == {"close": [1.0, 2.5], "symbol": "X"}
    assert spec["timeout_s"] == 2.5
    assert spec["memory_mb"] == 300


def test_queue(api_url):
    for _ in range(2):
        res = run_cli(["submit", EXAMPLES / "hello.py"], api_url)
        assert res.returncode == 0, describe_run(res)

    res = run_cli(["queue", "--json"], api_url)
    assert res.returncode == 0, describe_run(res)
    q = parse_json(res)
    assert q["pending"] == 2 and q["workers"] == 0, q

    res = run_cli(["queue"], api_url)
    assert res.returncode == 0, describe_run(res)
    assert res.stdout.strip(), describe_run(res)


def test_failed_job_exits_nonzero(running, tmp_path):
    script = write(tmp_path, "bad.py", FAILING)
    res = run_cli(["submit", script, "--wait"], running.url)
    assert res.returncode != 0, describe_run(res)

    res = run_cli(["submit", script, "--wait", "--json"], running.url)
    assert res.returncode != 0, describe_run(res)
    job = parse_json(res)
    assert job["status"] == "failed", job
    assert job["error"]["type"] == "ValueError", job

    res = run_cli(["result", job["id"]], running.url)
    assert res.returncode != 0, describe_run(res)
    res = run_cli(["status", job["id"]], running.url)
    assert res.returncode == 0, describe_run(res)
    assert "failed" in res.stdout, describe_run(res)


def test_result_of_unfinished_job_is_nonzero(api_url):
    res = run_cli(["submit", EXAMPLES / "hello.py"], api_url)
    job_id = res.stdout.strip()
    assert res.returncode == 0 and JOB_ID_RE.match(job_id), describe_run(res)
    res = run_cli(["result", job_id], api_url)
    assert res.returncode != 0, describe_run(res)


def test_unknown_id_is_nonzero(api_url):
    for cmd in ("status", "result"):
        res = run_cli([cmd, "no-such-job"], api_url)
        assert res.returncode != 0, describe_run(res)


def test_bad_input_is_nonzero(api_url, tmp_path):
    missing = tmp_path / "missing.py"
    res = run_cli(["submit", missing], api_url)
    assert res.returncode != 0, describe_run(res)
    assert "missing.py" in res.stderr, describe_run(res)

    res = run_cli(["submit", EXAMPLES / "hello.py", "--params", "{not json"], api_url)
    assert res.returncode != 0, describe_run(res)

    res = run_cli(["submit", EXAMPLES / "hello.py", "--params", "[1, 2]"], api_url)
    assert res.returncode != 0, describe_run(res)


@pytest.mark.parametrize(
    "args",
    [["submit", EXAMPLES / "hello.py"], ["status", "abc"], ["result", "abc"], ["queue"]],
    ids=["submit", "status", "result", "queue"],
)
def test_unreachable_api(args):
    url = f"http://127.0.0.1:{free_port()}"
    res = run_cli(args, url, timeout=60)
    assert res.returncode != 0, describe_run(res)
    assert url in res.stderr, describe_run(res)


def run_locally(example, params, csv_path):
    """The example's run() in this process, with a real stratq.Context (its
    progress and log lines go nowhere): what a worker must compute too."""
    sys.path.insert(0, str(REPO_ROOT / "python"))
    try:
        from stratq import Context, Result

        ctx = Context("local", 1, params, None, 60, data_csv=csv_path.read_text(), events_fd=-1)
        value = runpy.run_path(str(EXAMPLES / example))["run"](ctx)
        return value.to_dict() if isinstance(value, Result) else value
    finally:
        sys.path.remove(str(REPO_ROOT / "python"))


@pytest.mark.parametrize("example, params", [("ma_crossover.py", {"fast": 10, "slow": 30}),
                                             ("mean_reversion.py", {})])
def test_examples_via_cli_compute_what_they_compute_locally(running, example, params):
    prices = EXAMPLES / "data" / "prices.csv"
    res = run_cli(["submit", EXAMPLES / example, "--data", prices, "--params", json.dumps(params),
                   "--wait", "--json"], running.url)
    assert res.returncode == 0, describe_run(res)
    job = parse_json(res)
    assert job["status"] == "succeeded", job
    result = job["result"]
    for key in ("total_return", "sharpe", "max_drawdown"):
        assert key in result["metrics"], result
    assert result == run_locally(example, params, prices)
