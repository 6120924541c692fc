"""The examples (examples/) and their sample data.

The generator and the shipped files are checked locally. Every example runs
through the real stack (the API and two workers of $STRATQ_BIN, with
STRATQ_DATA_DIR holding copies of the CSV files), the way a user runs it:
`stratq submit FILE --data FILE.csv --wait --json`, the batch route, and
examples/sweep.py with the Python client. The results are checked against
independent pure-Python computations of the same strategies (loops, no
pandas), and for determinism: the same job, or the same data given another
way (CSV, JSON, dataset), gives the same result.
"""

import csv
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

import pytest

from conftest import EXAMPLES, JOB_TIMEOUT, describe_run, run_cli

DATA = EXAMPLES / "data"
SHIPPED = ("prices.json", "prices.csv", "universe.csv")
SYMBOLS = ["AAA", "BBB", "CCC", "DDD", "EEE", "FFF", "GGG", "HHH"]
METRICS = {"total_return", "cagr", "annual_volatility", "sharpe", "sortino", "max_drawdown",
           "max_drawdown_duration", "win_rate", "turnover", "n_periods"}
CAPITAL = 10000.0


# --------------------------------------------------------------------------
# Sample data (local)
# --------------------------------------------------------------------------


def read_prices():
    with open(DATA / "prices.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return [r["date"] for r in rows], [float(r["close"]) for r in rows]


def read_universe():
    """(dates, symbols, {symbol: closes})"""
    with open(DATA / "universe.csv", newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = list(reader)
    symbols = header[1:]
    return ([r[0] for r in rows], symbols,
            {s: [float(r[i + 1]) for r in rows] for i, s in enumerate(symbols)})


def test_the_generator_makes_the_shipped_files_byte_for_byte(tmp_path):
    gen = DATA / "make_prices.py"
    for out in (tmp_path / "a", tmp_path / "b"):
        out.mkdir()
        subprocess.run([sys.executable, str(gen), str(out)], check=True)
        assert sorted(p.name for p in out.iterdir()) == sorted(SHIPPED)
        for name in SHIPPED:
            assert (out / name).read_bytes() == (DATA / name).read_bytes(), (
                f"examples/data/{name} is not what make_prices.py makes: rerun it")


def test_sample_data():
    dates, close = read_prices()
    js = json.loads((DATA / "prices.json").read_text())
    # prices.csv and prices.json hold the same series.
    assert js["symbol"] == "DEMO" and js["dates"] == dates and js["close"] == close
    assert len(dates) == 500 and close[0] == 100.0 and min(close) > 0
    assert dates == sorted(set(dates)) and dates[0] == "2022-01-03"
    udates, symbols, closes = read_universe()
    assert symbols == SYMBOLS and udates == dates
    assert all(closes[s][0] == 100.0 and min(closes[s]) > 0 for s in symbols)
    # Different drifts and vols: the symbols end far apart.
    finals = sorted(closes[s][-1] for s in symbols)
    assert finals[-1] / finals[0] > 1.5
    assert sum((DATA / n).stat().st_size for n in SHIPPED) < 100_000


# --------------------------------------------------------------------------
# Independent reference computations
# --------------------------------------------------------------------------


def reference(closes, weights, cost_bps):
    """The backtest convention of docs/result-shape.md, as loops. ``closes``
    and ``weights`` are {symbol: [...]}; weights[s][t] is decided at t's
    close and held over t+1; costs on each change of the target."""
    syms = list(closes)
    n = len(closes[syms[0]])

    def w(s, t):
        return weights[s][t] if t >= 0 else 0.0

    rets = []
    for t in range(1, n):
        r = sum(w(s, t - 1) * (closes[s][t] / closes[s][t - 1] - 1) for s in syms)
        r -= cost_bps / 10_000 * sum(abs(w(s, t - 1) - w(s, t - 2)) for s in syms)
        rets.append(r)
    equity = [CAPITAL]
    for r in rets:
        equity.append(equity[-1] * (1 + r))
    peak, mdd = equity[0], 0.0
    for e in equity:
        peak = max(peak, e)
        mdd = min(mdd, e / peak - 1)
    mean = math.fsum(rets) / len(rets)
    sd = statistics.stdev(rets)
    return {
        "total_return": equity[-1] / CAPITAL - 1,
        "sharpe": mean / sd * math.sqrt(252),
        "max_drawdown": mdd,
        "n_trades": sum(1 for s in syms for t in range(n) if w(s, t) != w(s, t - 1)),
        "equity": equity,
    }


def ma_positions(close, fast, slow):
    def sma(i, k):
        return sum(close[i - k + 1:i + 1]) / k if i >= k - 1 else None

    return [1.0 if i >= slow - 1 and sma(i, fast) > sma(i, slow) else 0.0
            for i in range(len(close))]


def bollinger_positions(close, window, k, allow_short):
    state, out = 0.0, []
    for i, price in enumerate(close):
        if i < window - 1:
            state = 0.0
        else:
            last = close[i - window + 1:i + 1]
            m, sd = statistics.fmean(last), statistics.stdev(last)
            if state == 0.0:
                if price < m - k * sd:
                    state = 1.0
                elif allow_short and price > m + k * sd:
                    state = -1.0
            elif (state > 0 and price >= m) or (state < 0 and price <= m):
                state = 0.0
        out.append(state)
    return out


def momentum_book(closes, lookback, top_k, bottom_k, every):
    """(weights {symbol: [...]}, [(row, longs, shorts)])"""
    syms = list(closes)
    n = len(closes[syms[0]])
    weights = {s: [0.0] * n for s in syms}
    book = []
    current = dict.fromkeys(syms, 0.0)
    for t in range(n):
        if t >= lookback and (t - lookback) % every == 0:
            trailing = {s: closes[s][t] / closes[s][t - lookback] - 1 for s in syms}
            order = sorted(syms, key=lambda s: (-trailing[s], s))
            longs, shorts = order[:top_k], (order[-bottom_k:] if bottom_k else [])
            current = dict.fromkeys(syms, 0.0)
            for s in longs:
                current[s] = (1.0 if not bottom_k else 0.5) / top_k
            for s in shorts:
                current[s] = -0.5 / bottom_k
            book.append((t, longs, shorts))
        for s in syms:
            weights[s][t] = current[s]
    return weights, book


def approx(x):
    # Results are rounded to 6 significant digits.
    return pytest.approx(x, rel=2e-5, abs=1e-9)


def check_result(result, dates, want=None):
    """A stratq.Result over ``dates``, finite metrics, optionally equal to
    the reference ``want``."""
    assert result["stratq_result"] == 1, result
    m = result["metrics"]
    assert set(m) == METRICS, m
    for key, value in m.items():
        assert isinstance(value, (int, float)) and math.isfinite(value), (key, value)
    assert m["n_periods"] == len(dates) - 1
    assert -1.0 <= m["max_drawdown"] <= 0.0
    eq = result["equity"]
    assert eq["n"] == len(eq["t"]) == len(eq["v"]) == len(dates)
    assert eq["t"] == dates
    assert eq["v"][0] == CAPITAL
    assert eq["v"][-1] == approx(CAPITAL * (1 + m["total_return"]))
    assert result["n_trades"] == len(result["trades"]) > 0
    if want is not None:
        for key in ("total_return", "sharpe", "max_drawdown"):
            assert m[key] == approx(want[key]), key
        assert result["n_trades"] == want["n_trades"]
        assert eq["v"] == [approx(v) for v in want["equity"]]


# --------------------------------------------------------------------------
# The stack
# --------------------------------------------------------------------------


@pytest.fixture
def data_dir():
    # World-readable, outside pytest's 0700 tmp_path: a root worker runs
    # jobs under a uid of their own, which must be able to enter it.
    d = tempfile.mkdtemp(prefix="stratq-examples-")
    os.chmod(d, 0o755)
    for name in ("prices.csv", "universe.csv"):
        shutil.copy(DATA / name, d)
        os.chmod(os.path.join(d, name), 0o644)
    yield d
    shutil.rmtree(d)


@pytest.fixture
def running(stack, data_dir):
    """The API and two workers, with STRATQ_DATA_DIR = data_dir."""
    env = {"STRATQ_DATA_DIR": data_dir}
    api = stack.start_api(env=env)
    stack.start_workers(2, env=env)
    return api


def submit(running, example, *args):
    """`stratq submit examples/EXAMPLE ARGS --wait --json`: the job record."""
    res = run_cli(["submit", EXAMPLES / example, *args, "--wait", "--json"], running.url)
    job = json.loads(res.stdout)
    return job, res


def run_batch(running, specs):
    """Submits specs in one POST /v1/jobs/batch; the terminal records."""
    status, body = running.client.post("/v1/jobs/batch", {"jobs": specs})
    assert status == 200, body
    ids = [item["id"] for item in body["jobs"]]
    return [running.client.wait_job(i, timeout=JOB_TIMEOUT) for i in ids]


def spec(example, params, **data):
    return {"code": (EXAMPLES / example).read_text(), "params": params, "timeout_s": 60, **data}


def succeeded(job):
    assert job["status"] == "succeeded", json.dumps(job, indent=1)[:3000]
    return job["result"]


def log_lines(running, job_id):
    status, body = running.client.get(f"/v1/jobs/{job_id}/logs")
    assert status == 200, body
    return body["log"]


def test_hello_and_errors(running):
    job, res = submit(running, "hello.py", "--params", '{"name": "desk"}')
    assert res.returncode == 0, describe_run(res)
    assert succeeded(job) == {"greeting": "hello desk"}

    csv_text = (DATA / "prices.csv").read_text()
    bad = run_batch(running, [
        spec("ma_crossover.py", {"fast": 50, "slow": 20}, data_csv=csv_text),
        spec("ma_crossover.py", {}),
        spec("mean_reversion.py", {"dataset": "no_such_file"}),
        spec("momentum.py", {"dataset": "universe", "top_k": 5, "bottom_k": 4}),
        spec("momentum.py", {"symbols": ["AAA"]}, data_csv=csv_text),
    ])
    errors = [(j["status"], j["error"]["type"], j["error"]["message"]) for j in bad]
    assert errors[0] == ("failed", "ValueError",
                         "fast window (50) must be shorter than slow window (20)")
    assert errors[1][:2] == ("failed", "ValueError") and "no prices" in errors[1][2]
    assert errors[2][:2] == ("failed", "FileNotFoundError") and "no_such_file" in errors[2][2]
    assert errors[3][:2] == ("failed", "ValueError") and "8 symbols" in errors[3][2]
    assert errors[4][:2] == ("failed", "ValueError") and "'AAA'" in errors[4][2]


def test_ma_crossover(running):
    dates, close = read_prices()
    params = {"fast": 20, "slow": 50}
    job, res = submit(running, "ma_crossover.py", "--data", DATA / "prices.csv",
                      "--params", json.dumps(params))
    assert res.returncode == 0, describe_run(res)
    result = succeeded(job)
    want = reference({"close": close}, {"close": ma_positions(close, 20, 50)}, 5.0)
    check_result(result, dates, want)
    assert result["extra"] == {"fast": 20, "slow": 50, "cost_bps": 5.0}
    # Long or flat; each trade goes from the last one's target.
    last = 0.0
    for trade in result["trades"]:
        assert trade["from"] == last and trade["to"] in (0.0, 1.0) and trade["to"] != last
        last = trade["to"]
    assert job["progress"]["fraction"] == 1.0 and job["progress"]["message"] == "done"
    lines = log_lines(running, job["id"])
    assert [x["msg"] for x in lines] == ["prices loaded", "backtest done"], lines
    assert lines[0]["fields"]["rows"] == 500 and lines[1]["fields"]["trades"] == want["n_trades"]

    # The same prices as JSON, from the data directory, and as CSV again:
    # the same result. Other windows and costs agree with the reference.
    csv_text = (DATA / "prices.csv").read_text()
    others = [(2, 3, 0.0), (10, 30, 25.0)]
    jobs = run_batch(running, [
        spec("ma_crossover.py", params, data=json.loads((DATA / "prices.json").read_text())),
        spec("ma_crossover.py", {**params, "dataset": "prices"}),
        spec("ma_crossover.py", params, data_csv=csv_text),
        *(spec("ma_crossover.py", {"fast": f, "slow": s, "cost_bps": c}, data_csv=csv_text)
          for f, s, c in others),
    ])
    by_json, by_dataset, again, *rest = [succeeded(j) for j in jobs]
    assert by_json == result and by_dataset == result and again == result
    for (f, s, c), got in zip(others, rest):
        want = reference({"close": close}, {"close": ma_positions(close, f, s)}, c)
        check_result(got, dates, want)


def test_mean_reversion(running):
    dates, close = read_prices()
    job, res = submit(running, "mean_reversion.py", "--data", DATA / "prices.csv")
    assert res.returncode == 0, describe_run(res)
    result = succeeded(job)
    positions = bollinger_positions(close, 20, 2.0, True)
    check_result(result, dates, reference({"close": close}, {"close": positions}, 5.0))
    assert {t["to"] for t in result["trades"]} == {-1.0, 0.0, 1.0}
    assert result["extra"] == {"window": 20, "k": 2.0, "allow_short": True, "cost_bps": 5.0}
    assert job["progress"]["fraction"] == 1.0

    # A flat series with one dip below the band and a rebound to the mean:
    # buys the 90 dip, sells at 100 (no costs): +11.1%, two trades.
    hand = [100.0] * 5 + [100.5, 99.5] * 5 + [90.0, 100.0, 100.0]
    hand_csv = "close\n" + "".join(f"{x}\n" for x in hand)
    long_only = {"window": 20, "k": 1.5, "allow_short": False}
    jobs = run_batch(running, [
        spec("mean_reversion.py", {"window": 5, "k": 1.5, "allow_short": False, "cost_bps": 0},
             data_csv=hand_csv),
        spec("mean_reversion.py", {**long_only, "dataset": "prices"}),
        spec("mean_reversion.py", {}, data_csv=(DATA / "prices.csv").read_text()),
    ])
    small, no_shorts, again = [succeeded(j) for j in jobs]
    assert small["n_trades"] == 2
    assert small["metrics"]["total_return"] == approx(100.0 / 90.0 - 1)
    assert small["equity"]["t"] == list(range(len(hand)))  # no date column: positions
    no_shorts_want = bollinger_positions(close, 20, 1.5, False)
    check_result(no_shorts, dates, reference({"close": close}, {"close": no_shorts_want}, 5.0))
    assert min(t["to"] for t in no_shorts["trades"]) == 0.0
    assert again == result


def test_momentum(running):
    dates, symbols, closes = read_universe()
    params = {"lookback": 60, "top_k": 2, "rebalance": 20}
    job, res = submit(running, "momentum.py", "--data", DATA / "universe.csv",
                      "--params", json.dumps(params))
    assert res.returncode == 0, describe_run(res)
    result = succeeded(job)
    weights, book = momentum_book(closes, 60, 2, 0, 20)
    check_result(result, dates, reference(closes, weights, 10.0))
    rebalances = result["extra"]["rebalances"]
    assert [(r["date"], r["long"], r["short"]) for r in rebalances] == [
        (dates[t], longs, shorts) for t, longs, shorts in book]
    for r in rebalances:
        assert len(r["long"]) == 2 and r["short"] == []
        assert r["weights"] == {s: 0.5 for s in r["long"]}
        assert math.fsum(r["weights"].values()) == pytest.approx(1.0)
    assert rebalances[0]["date"] == dates[60] and len(rebalances) == len(range(60, 500, 20))
    assert result["extra"]["symbols"] == SYMBOLS
    assert {t["symbol"] for t in result["trades"]} <= set(SYMBOLS)
    assert job["progress"]["fraction"] == 1.0

    # Long/short from the data directory, and the first again from there.
    ls = {"lookback": 40, "top_k": 3, "bottom_k": 2, "rebalance": 10, "cost_bps": 0}
    jobs = run_batch(running, [spec("momentum.py", {**ls, "dataset": "universe"}),
                               spec("momentum.py", {**params, "dataset": "universe"})])
    long_short, again = [succeeded(j) for j in jobs]
    weights, book = momentum_book(closes, 40, 3, 2, 10)
    check_result(long_short, dates, reference(closes, weights, 0.0))
    for r, (t, longs, shorts) in zip(long_short["extra"]["rebalances"], book, strict=True):
        assert (r["date"], r["long"], r["short"]) == (dates[t], longs, shorts)
        assert len(r["long"]) == 3 and len(r["short"]) == 2 and not set(r["long"]) & set(r["short"])
        assert math.fsum(r["weights"].values()) == pytest.approx(0.0, abs=1e-12)
        assert math.fsum(abs(w) for w in r["weights"].values()) == pytest.approx(1.0)
    assert again["metrics"] == result["metrics"] and again["equity"] == result["equity"]
    assert again["trades"] == result["trades"]
    assert again["extra"]["rebalances"] == rebalances


def run_sweep(running, *args):
    res = subprocess.run([sys.executable, str(EXAMPLES / "sweep.py"), "--api-url", running.url,
                          *map(str, args)], capture_output=True, text=True, timeout=180,
                         env={k: v for k, v in os.environ.items() if k != "STRATQ_API_URL"})
    rows = []
    lines = res.stdout.splitlines()
    header = [i for i, line in enumerate(lines) if line.split()[:3] == ["rank", "fast", "slow"]]
    for line in lines[header[0] + 1:] if header else []:
        rank, fast, slow, sharpe, ret, mdd, trades, job_id = line.split()
        rows.append({"rank": int(rank), "fast": int(fast), "slow": int(slow),
                     "sharpe": float(sharpe), "return": float(ret.rstrip("%")) / 100,
                     "max_dd": float(mdd.rstrip("%")) / 100, "trades": int(trades), "id": job_id})
    return res, rows


def test_sweep(running):
    res, rows = run_sweep(running)
    assert res.returncode == 0, describe_run(res)
    assert "submitted 9 jobs in one batch" in res.stdout
    grid = {(f, s) for f in (5, 10, 20) for s in (30, 50, 100)}
    assert {(r["fast"], r["slow"]) for r in rows} == grid and len(rows) == 9
    assert [r["rank"] for r in rows] == list(range(1, 10))
    sharpes = [r["sharpe"] for r in rows]
    assert sharpes == sorted(sharpes, reverse=True) and len(set(sharpes)) > 1
    dates, close = read_prices()
    for r in rows:
        job = running.client.job(r["id"])
        assert job["spec"]["params"] == {"fast": r["fast"], "slow": r["slow"], "cost_bps": 5.0}
        m = succeeded(job)["metrics"]
        assert r["sharpe"] == round(m["sharpe"], 3)
        assert r["return"] == pytest.approx(m["total_return"], abs=6e-5)
        assert r["max_dd"] == pytest.approx(m["max_drawdown"], abs=6e-5)
        positions = ma_positions(close, r["fast"], r["slow"])
        want = reference({"close": close}, {"close": positions}, 5.0)
        assert r["trades"] == want["n_trades"]
        assert m["sharpe"] == approx(want["sharpe"])

    # Again, with the prices read from the data directory: the same table.
    res2, rows2 = run_sweep(running, "--dataset", "prices")
    assert res2.returncode == 0, describe_run(res2)

    def strip(rs):
        return [{k: v for k, v in r.items() if k != "id"} for r in rs]

    assert strip(rows2) == strip(rows)

    # Jobs that fail are listed with their errors, and the exit status is 1.
    res3, rows3 = run_sweep(running, "--dataset", "universe", "--fast", "5", "--slow", "30,50")
    assert res3.returncode == 1, describe_run(res3)
    assert rows3 == [] and "0 of 2 succeeded" in res3.stdout
    no_close = "failed: ValueError: dataset universe has no column 'close'"
    assert res3.stderr.count(no_close) == 2, res3.stderr


def test_the_complete_example_of_docs_strategies_md(running):
    """docs/strategies.md's example runs, and prints the metrics shown there."""
    doc = (EXAMPLES.parent / "docs" / "strategies.md").read_text()
    start = doc.index("```python\n", doc.index("<!-- test_examples.py runs this block")) + 10
    code = doc[start:doc.index("```", start)]
    shown = doc[doc.index('  "metrics": {', start):]
    shown = json.loads(shown[shown.index("{"):shown.index("}") + 1])
    params = {"entry": 20, "exit": 10}
    assert '--params \'{"entry": 20, "exit": 10}\'' in doc
    jobs = run_batch(running, [
        {"code": code, "params": params, "data_csv": (DATA / "prices.csv").read_text()},
        {"code": code, "params": {**params, "dataset": "prices"}},
    ])
    result, from_dataset = [succeeded(j) for j in jobs]
    assert result["metrics"] == shown
    assert f'"n_trades": {result["n_trades"]},' in doc
    assert from_dataset == result
    check_result(result, read_prices()[0])
    lines = log_lines(running, jobs[0]["id"])
    assert [x["msg"] for x in lines] == ["prices loaded", "backtest done"]
