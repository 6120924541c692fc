"""What a strategy has inside a job beyond params and data (docs/strategies.md):
ctx.progress, ctx.log, CSV data (data_csv), ctx.dataset and the data
directory, GET /v1/datasets, and how the CLI shows them."""

import concurrent.futures
import json
import os
import shutil
import subprocess
import tempfile
import textwrap
from pathlib import Path

import pytest

from conftest import STRATQ_BIN, wait_for

PRICES = "date,close\n2024-01-02,100.5\n2024-01-03,101.0\n2024-01-04,99.25\n"


@pytest.fixture
def data_dir():
    # World-readable: a job of its own uid must be able to enter it.
    d = tempfile.mkdtemp(prefix="stratq-data-")
    os.chmod(d, 0o755)
    for name, text in (("prices.csv", PRICES), ("notes.txt", "not a dataset\n")):
        with open(os.path.join(d, name), "w") as f:
            f.write(text)
        os.chmod(os.path.join(d, name), 0o644)
    os.symlink("/etc/passwd", os.path.join(d, "passwd.csv"))
    yield d
    shutil.rmtree(d)


def code(text):
    return textwrap.dedent(text)


# Job code: for each dataset name, "read" or the type of what ctx.dataset raised.
TRY_DATASETS = """
def try_datasets(ctx, out, names):
    for name in names:
        try:
            ctx.dataset(name)
            out[name] = "read"
        except Exception as exc:
            out[name] = type(exc).__name__
"""


def cli(api_url, *args):
    return subprocess.run([str(STRATQ_BIN), *args], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, STRATQ_API_URL=api_url))


def test_progress_is_visible_while_the_job_runs_and_kept_after(stack):
    api_proc = stack.start_api()
    api = api_proc.client
    stack.start_worker()
    job_id = api.submit({"code": code("""
        import time
        def run(ctx):
            ctx.progress(0.25, "loading")
            ctx.progress(0.5, "half way")
            while not ctx.params.get("never"):
                time.sleep(0.05)
        """), "timeout_s": 60})

    def half_way():
        job = api.get(f"/v1/jobs/{job_id}")[1]
        p = job.get("progress") or {}
        return job if job["status"] == "running" and p.get("fraction") == 0.5 else None

    job = wait_for(half_way, 10, "progress 0.5 on the running job")
    assert job["progress"]["message"] == "half way"
    assert job["progress"]["updated_ms"] >= job["started_ms"]
    # The CLI shows it too.
    res = cli(api_proc.url, "status", job_id)
    assert res.returncode == 0, res.stderr
    assert "running, 50% half way" in res.stdout, res.stdout
    assert api.request("DELETE", f"/v1/jobs/{job_id}")[0] == 202
    job = api.wait_job(job_id)
    assert job["status"] == "cancelled" and job["progress"]["fraction"] == 0.5, job


def test_the_last_progress_is_never_lost_and_bad_values_fail(stack):
    api = stack.start_api().client
    stack.start_worker()
    # Many updates in a burst: only the last needs to arrive, and it does.
    job = api.wait_job(api.submit({"code": code("""
        def run(ctx):
            for i in range(1, 1001):
                ctx.progress(i / 1000 * 0.9, f"step {i}")
            return "ok"
        """)}))
    assert job["status"] == "succeeded", job
    assert job["progress"]["message"] == "step 1000", job["progress"]
    assert abs(job["progress"]["fraction"] - 0.9) < 1e-9
    job = api.wait_job(api.submit({"code": "def run(ctx):\n    ctx.progress(1.5)\n"}))
    assert job["status"] == "failed" and job["error"]["type"] == "ValueError", job
    assert "from 0 to 1" in job["error"]["message"]


def test_log_lines_are_kept_with_the_job(stack):
    api_proc = stack.start_api()
    api = api_proc.client
    stack.start_worker()
    job_id = api.submit({"code": code("""
        import math
        def run(ctx):
            print("printed, not logged")
            ctx.log("signals ready", rows=500, symbols=["A", "B"])
            ctx.log("odd fields", nan=math.nan, obj=object)
            ctx.log("done")
            return 1
        """)})
    job = api.wait_job(job_id)
    assert job["status"] == "succeeded", job
    status, body = api.get(f"/v1/jobs/{job_id}/logs")
    assert status == 200, body
    lines = body["log"]
    assert [x["msg"] for x in lines] == ["signals ready", "odd fields", "done"], lines
    assert lines[0]["fields"] == {"rows": 500, "symbols": ["A", "B"]}
    assert lines[1]["fields"]["nan"] is None and "object" in lines[1]["fields"]["obj"]
    assert all(x["ts_ms"] >= job["started_ms"] for x in lines)
    assert body["log_offset"] == 3
    status, body = api.get(f"/v1/jobs/{job_id}/logs?log_offset=2")
    assert [x["msg"] for x in body["log"]] == ["done"] and body["log_offset"] == 3
    assert "printed, not logged" in body["stdout"]
    res = cli(api_proc.url, "logs", job_id)
    assert res.returncode == 0, res.stderr
    assert "] signals ready rows=500 symbols=[\"A\",\"B\"]" in res.stderr, res.stderr


def test_data_csv_is_a_dataframe(stack, tmp_path):
    api_proc = stack.start_api()
    api = api_proc.client
    stack.start_worker()
    strategy = code("""
        def run(ctx):
            df = ctx.data
            return [type(df).__name__, list(df.columns), float(df["close"].sum()), len(df)]
        """)
    job = api.wait_job(api.submit({"code": strategy, "data_csv": PRICES}))
    assert job["status"] == "succeeded", job
    assert job["result"] == ["DataFrame", ["date", "close"], 300.75, 3]
    # stratq submit --data FILE.csv sends it as data_csv.
    (tmp_path / "s.py").write_text(strategy)
    (tmp_path / "p.csv").write_text(PRICES)
    res = cli(api_proc.url, "submit", str(tmp_path / "s.py"), "--data", str(tmp_path / "p.csv"),
              "--wait", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["result"] == ["DataFrame", ["date", "close"], 300.75, 3]
    # Not both, and a field error that names data_csv.
    status, body = api.post("/v1/jobs", {"code": strategy, "data": [1], "data_csv": PRICES})
    assert status == 400 and "data_csv" in body["error"], body


def test_datasets_are_read_from_the_data_directory_only(stack, data_dir):
    api = stack.start_api(env={"STRATQ_DATA_DIR": data_dir}).client
    stack.start_worker(env={"STRATQ_DATA_DIR": data_dir})
    status, body = api.get("/v1/datasets")
    assert status == 200, body
    assert [(d["name"], d["file"], d["size"]) for d in body["datasets"]] == \
        [("prices", "prices.csv", len(PRICES))], body
    job = api.wait_job(api.submit({"code": code("""
        def run(ctx):
            out = {}
            a = ctx.dataset("prices")
            b = ctx.dataset("prices.csv")
            out["read"] = [len(a), float(a["close"].iloc[-1]), len(b)]
            try_datasets(ctx, out, ("../etc/passwd", "/etc/passwd", "passwd", "sub/../../x",
                                    "missing"))
            return out
        """) + TRY_DATASETS}))
    assert job["status"] == "succeeded", job
    r = job["result"]
    assert r["read"] == [3, 99.25, 3]
    assert r["../etc/passwd"] == "PermissionError"
    assert r["/etc/passwd"] == "PermissionError"
    assert r["passwd"] == "PermissionError"  # a symlink out of the directory
    assert r["sub/../../x"] == "PermissionError"
    assert r["missing"] == "FileNotFoundError"


def test_the_dataset_listing_follows_the_directory_within_a_second(stack, data_dir):
    # The API reads the directory on a thread, at most once a second
    # (docs/architecture.md, "GET /v1/datasets reads the directory on a
    # thread"): what changes shows within about a second, and requests
    # that come together share one read.
    api = stack.start_api(env={"STRATQ_DATA_DIR": data_dir}).client

    def files():
        status, body = api.get("/v1/datasets")
        assert status == 200, body
        return [(d["file"], d["size"]) for d in body["datasets"]]

    assert files() == [("prices.csv", len(PRICES))]
    with open(os.path.join(data_dir, "more.csv"), "w") as f:
        f.write(PRICES * 2)
    wait_for(lambda: files() == [("more.csv", 2 * len(PRICES)), ("prices.csv", len(PRICES))], 5,
             "more.csv in the listing")
    os.unlink(os.path.join(data_dir, "prices.csv"))
    wait_for(lambda: files() == [("more.csv", 2 * len(PRICES))], 5, "prices.csv gone")
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        got = list(pool.map(lambda _: files(), range(100)))
    assert got == [[("more.csv", 2 * len(PRICES))]] * 100


def test_an_unreadable_data_directory_is_503(stack, tmp_path):
    api = stack.start_api(env={"STRATQ_DATA_DIR": str(tmp_path / "missing")}).client
    status, body = api.get("/v1/datasets")
    assert status == 503 and "cannot read the data directory" in body["error"], body


@pytest.mark.skipif(os.geteuid() != 0, reason="jobs take another uid only under a root worker")
def test_a_checkout_out_of_the_jobs_reach(stack, tmp_path):
    # A clone under a home directory of mode 0700 (/root, or any home that
    # Debian 12's adduser makes): the jobs' uid cannot walk to the harness or
    # the data directory by their paths, yet they import the whole SDK and
    # read datasets, and nothing else of the directory.
    home = tmp_path / "home"
    shutil.copytree(Path(__file__).resolve().parents[2] / "python", home / "stratq" / "python",
                    ignore=shutil.ignore_patterns("__pycache__"))
    data = home / "stratq" / "data"
    (data / "sub").mkdir(parents=True)
    (data / "prices.csv").write_text(PRICES)
    (data / "sub" / "more.csv").write_text(PRICES)
    (home / "secret.csv").write_text("date,close\n2024-01-01,1\n")
    os.symlink(home / "secret.csv", data / "link.csv")
    os.chmod(home, 0o700)
    env = {"STRATQ_HARNESS_DIR": str(home / "stratq" / "python"), "STRATQ_DATA_DIR": str(data)}
    api = stack.start_api(env={"STRATQ_DATA_DIR": str(data)}).client
    stack.start_worker(env=env)
    job = api.wait_job(api.submit({"code": code("""
        import os
        import stratq

        def run(ctx):
            df = ctx.dataset("prices")
            out = {"uid": os.getuid(), "rows": len(df), "sub/more": len(ctx.dataset("sub/more"))}
            # _engine is imported only now, by the job's uid.
            out["return"] = float(stratq.backtest(df["close"], df["close"] * 0 + 1).equity.iloc[-1])
            try_datasets(ctx, out, ("link", "../../secret", "sub"))
            return out
        """) + TRY_DATASETS}))
    assert job["status"] == "succeeded", job
    r = job["result"]
    assert r["uid"] != 0 and r["rows"] == 3 and r["sub/more"] == 3, r
    assert isinstance(r["return"], float), r
    assert r["link"] == "PermissionError"  # a symlink, even to a file beside it
    assert r["../../secret"] == "PermissionError"
    assert r["sub"] == "FileNotFoundError"  # a directory is no dataset


def test_without_a_data_directory(stack):
    api = stack.start_api().client
    stack.start_worker()
    assert api.get("/v1/datasets") == (200, {"datasets": []})
    job = api.wait_job(api.submit({"code": "def run(ctx):\n    return ctx.dataset('prices')\n"}))
    assert job["status"] == "failed" and job["error"]["type"] == "FileNotFoundError", job
    assert "STRATQ_DATA_DIR" in job["error"]["message"]


def test_a_returned_result_is_stored_in_its_documented_shape(stack):
    api = stack.start_api().client
    stack.start_worker()
    job = api.wait_job(api.submit({"code": code("""
        import pandas as pd
        import stratq
        def run(ctx):
            prices = pd.Series([100.0, 110.0, 99.0, 108.9],
                               index=pd.date_range("2024-01-01", periods=4))
            bt = stratq.backtest(prices, [1, 1, 0, 0])
            return stratq.Result.from_backtest(bt, fast=20)
        """)}))
    assert job["status"] == "succeeded", job
    r = job["result"]
    assert r["stratq_result"] == 1
    # Held over day 2 (+10%) and day 3 (-10%), flat after: 10000 -> 11000 -> 9900.
    assert r["equity"] == {"t": ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"],
                           "v": [10000.0, 11000.0, 9900.0, 9900.0], "n": 4}
    assert r["metrics"]["total_return"] == pytest.approx(-0.01)
    assert [t["to"] for t in r["trades"]] == [1.0, 0.0]
    assert r["extra"] == {"fast": 20}
