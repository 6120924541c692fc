"""The example strategies and their data, checked locally (no stratq
binary): each runs under this interpreter with a plain ctx object, and the
metrics agree with an independent pure-Python computation."""

import json
import math
import runpy
import subprocess
import sys
from types import SimpleNamespace

import pytest

from conftest import EXAMPLES

PRICES = EXAMPLES / "data" / "prices.json"
KEYS = {"total_return", "sharpe", "max_drawdown", "trades", "final_equity"}


def load(name):
    return runpy.run_path(str(EXAMPLES / name))["run"]


def prices():
    return json.loads(PRICES.read_text())


def test_prices_file_is_what_the_generator_makes(tmp_path):
    out = tmp_path / "prices.json"
    subprocess.run([sys.executable, str(EXAMPLES / "data" / "make_prices.py"), str(out)], check=True)
    assert out.read_text() == PRICES.read_text(), "examples/data/prices.json is stale: rerun make_prices.py"
    again = tmp_path / "again.json"
    subprocess.run([sys.executable, str(EXAMPLES / "data" / "make_prices.py"), str(again)], check=True)
    assert again.read_bytes() == out.read_bytes()


def test_prices_shape():
    p = prices()
    assert p["symbol"] == "DEMO"
    assert 450 <= len(p["dates"]) == len(p["close"]) <= 550
    assert p["dates"] == sorted(p["dates"]) and len(set(p["dates"])) == len(p["dates"])
    assert all(c > 0 and round(c, 4) == c for c in p["close"])


def test_hello():
    run = load("hello.py")
    assert run(SimpleNamespace(params={}, data=None)) == {"greeting": "hello world"}
    assert run(SimpleNamespace(params={"name": "desk"}, data=None)) == {"greeting": "hello desk"}


@pytest.mark.parametrize("name", ["ma_crossover.py", "mean_reversion.py"])
def test_strategy_on_demo_prices(name):
    result = load(name)(SimpleNamespace(params={}, data=prices()))
    assert KEYS <= set(result), result
    json.dumps(result, allow_nan=False)  # serializable, no NaN/inf
    assert -1.0 <= result["max_drawdown"] <= 0.0
    assert isinstance(result["trades"], int) and result["trades"] > 0
    assert result["final_equity"] == pytest.approx(10000 * (1 + result["total_return"]), abs=0.01)


def reference_ma_crossover(close, fast, slow, capital=10000.0):
    """Independent, loop-based version of examples/ma_crossover.py."""

    def sma(i, w):
        return sum(close[i - w + 1 : i + 1]) / w if i >= w - 1 else None

    pos = []
    for i in range(len(close)):
        f, s = sma(i, fast), sma(i, slow)
        pos.append(1.0 if f is not None and s is not None and f > s else 0.0)
    rets = [0.0] + [pos[i - 1] * (close[i] / close[i - 1] - 1) for i in range(1, len(close))]
    equity, peak, mdd, eq = [], capital, 0.0, capital
    for x in rets:
        eq *= 1 + x
        equity.append(eq)
        peak = max(peak, eq)
        mdd = min(mdd, eq / peak - 1)
    mean = sum(rets) / len(rets)
    std = math.sqrt(sum((x - mean) ** 2 for x in rets) / (len(rets) - 1))
    trades = sum(1 for a, b in zip([0.0] + pos, pos) if a != b)
    return {
        "total_return": equity[-1] / capital - 1,
        "sharpe": mean / std * math.sqrt(252) if std else 0.0,
        "max_drawdown": mdd,
        "trades": trades,
        "final_equity": equity[-1],
    }


@pytest.mark.parametrize("fast,slow", [(2, 3), (20, 50), (10, 30)])
def test_ma_crossover_matches_reference(fast, slow):
    data = prices()
    got = load("ma_crossover.py")(SimpleNamespace(params={"fast": fast, "slow": slow}, data=data))
    want = reference_ma_crossover(data["close"], fast, slow)
    assert got["trades"] == want["trades"]
    for key in ("total_return", "sharpe", "max_drawdown"):
        assert got[key] == pytest.approx(want[key], abs=1e-6), key
    assert got["final_equity"] == pytest.approx(want["final_equity"], abs=0.01)


def test_ma_crossover_hand_example():
    # fast 1 vs slow 2: long after a close above the previous close.
    close = [10.0, 11.0, 12.1, 11.0, 11.0]
    got = load("ma_crossover.py")(SimpleNamespace(params={"fast": 1, "slow": 2}, data={"close": close}))
    # Long from day 1's close: earn day 2 (+10%), lose day 3 (-9.09%), flat after.
    assert got["trades"] == 2
    assert got["total_return"] == pytest.approx(0.0, abs=1e-6)
    assert got["max_drawdown"] == pytest.approx(11.0 / 12.1 - 1, abs=1e-6)


def test_mean_reversion_hand_example():
    # A flat series with one dip below the band and recovery to the mean.
    close = [100.0] * 5 + [100.5, 99.5] * 5 + [90.0, 100.0, 100.0]
    got = load("mean_reversion.py")(
        SimpleNamespace(params={"window": 5, "k": 1.5, "allow_short": False}, data={"close": close})
    )
    # Buys the 90 dip, sells at the rebound to 100 (above the mean): +11.1%.
    assert got["trades"] == 2
    assert got["total_return"] == pytest.approx(100.0 / 90.0 - 1, abs=1e-6)


@pytest.mark.parametrize(
    "name,params",
    [("ma_crossover.py", {"fast": 50, "slow": 20}), ("ma_crossover.py", {"fast": 0}), ("mean_reversion.py", {"window": 1})],
)
def test_strategies_reject_bad_params(name, params):
    with pytest.raises(ValueError):
        load(name)(SimpleNamespace(params=params, data=prices()))
