"""stratq.Result: the to_dict shape (docs/result-shape.md), rounding,
downsampling, conversion of numpy/pandas values and the JSON round trip."""

import datetime
import json

import numpy as np
import pandas as pd
import pytest

import stratq

KEYS = ["stratq_result", "metrics", "equity", "trades", "n_trades", "extra"]


def round_trip(d):
    # The harness encodes results this way.
    return json.loads(json.dumps(d, allow_nan=False, ensure_ascii=False, separators=(",", ":")))


def test_empty_result():
    assert stratq.Result().to_dict() == {
        "stratq_result": 1, "metrics": None, "equity": None, "trades": None,
        "n_trades": None, "extra": {}}


def test_from_backtest_shape():
    idx = pd.date_range("2024-01-01", periods=4, freq="D")
    prices = pd.Series([100.0, 110.0, 99.0, 108.9], index=idx, name="SPY")
    bt = stratq.backtest(prices, pd.Series([1, 1, 0, 0], index=idx))
    d = stratq.Result.from_backtest(bt, fast=20, label="ma").to_dict()
    assert list(d) == KEYS
    assert d["stratq_result"] == 1
    assert d["equity"] == {"t": ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"],
                           "v": [10000.0, 11000.0, 9900.0, 9900.0], "n": 4}
    assert d["trades"] == [
        {"date": "2024-01-01", "symbol": "SPY", "from": 0.0, "to": 1.0, "price": 100.0},
        {"date": "2024-01-03", "symbol": "SPY", "from": 1.0, "to": 0.0, "price": 99.0}]
    assert d["n_trades"] == 2
    assert d["extra"] == {"fast": 20, "label": "ma"}
    # the metrics of the backtest, rounded: total 1.1 * 0.9 - 1 = -0.01
    assert d["metrics"]["total_return"] == -0.01
    assert d["metrics"]["n_periods"] == 3
    assert set(d["metrics"]) == set(stratq.metrics(bt))
    assert round_trip(d) == d


def test_floats_are_rounded_to_six_significant_digits():
    d = stratq.Result(metrics={"sharpe": 1.23456789, "tiny": 1.23456789e-9, "n": 7},
                      equity=[10000.123456, 98765.4321],
                      trades=[{"price": 187.123456, "to": 0.333333333}]).to_dict()
    assert d["metrics"] == {"sharpe": 1.23457, "tiny": 1.23457e-09, "n": 7}
    assert d["equity"]["v"] == [10000.1, 98765.4]
    assert d["trades"] == [{"price": 187.123, "to": 0.333333}]


def test_extra_is_converted_but_not_rounded():
    d = stratq.Result(
        a=np.float64(0.123456789), b=np.int64(3), c=np.bool_(True), d=float("nan"),
        e=(1, 2), f=np.array([1.5, float("inf")]), g=pd.Timestamp("2024-05-06"),
        h=datetime.date(2024, 5, 7), i={1: "x"}, j=None,
        k=pd.Series([1.0, 2.0], index=pd.date_range("2024-01-01", periods=2))).to_dict()
    assert d["extra"] == {
        "a": 0.123456789, "b": 3, "c": True, "d": None, "e": [1, 2], "f": [1.5, None],
        "g": "2024-05-06", "h": "2024-05-07", "i": {"1": "x"}, "j": None,
        "k": {"t": ["2024-01-01", "2024-01-02"], "v": [1.0, 2.0], "n": 2}}
    assert type(d["extra"]["a"]) is float and type(d["extra"]["b"]) is int
    assert type(d["extra"]["c"]) is bool
    assert round_trip(d) == d


def test_nan_in_equity_and_metrics_becomes_null():
    d = stratq.Result(metrics={"sharpe": float("nan"), "cagr": float("inf")},
                      equity=[1.0, float("nan"), 3.0]).to_dict()
    assert d["metrics"] == {"sharpe": None, "cagr": None}
    assert d["equity"]["v"] == [1.0, None, 3.0]
    round_trip(d)


def test_long_equity_is_downsampled_evenly_with_first_and_last():
    d = stratq.Result(equity=[float(i) for i in range(12001)]).to_dict()
    t, v = d["equity"]["t"], d["equity"]["v"]
    assert d["equity"]["n"] == 12001
    assert len(t) == len(v) == stratq.Result.MAX_POINTS == 5000
    assert t[0] == 0 and t[-1] == 12000
    assert t == sorted(set(t))
    assert v == [float(x) for x in t]
    # evenly spaced: steps of 12000/4999 = 2.4005 rounded, so 2 or 3
    assert set(np.diff(t)) == {2, 3}
    # a smaller limit: 0, 6000, 12000
    assert stratq.Result(equity=list(range(12001))).to_dict(max_points=3)["equity"] == {
        "t": [0, 6000, 12000], "v": [0.0, 6000.0, 12000.0], "n": 12001}


def test_short_equity_is_kept_whole():
    d = stratq.Result(equity=list(range(5000))).to_dict()
    assert d["equity"]["t"] == list(range(5000))


def test_downsampled_dates_keep_the_last_one():
    idx = pd.bdate_range("2000-01-03", periods=9000)
    equity = pd.Series(np.linspace(100, 200, 9000), index=idx)
    d = stratq.Result(equity=equity).to_dict(max_points=1000)
    assert len(d["equity"]["t"]) == 1000 and d["equity"]["n"] == 9000
    assert d["equity"]["t"][0] == "2000-01-03"
    assert d["equity"]["t"][-1] == idx[-1].strftime("%Y-%m-%d")
    assert d["equity"]["v"][-1] == 200.0


def test_intraday_equity_times():
    idx = pd.date_range("2024-03-01 09:30", periods=2, freq="h", tz="America/New_York")
    d = stratq.Result(equity=pd.Series([1.0, 2.0], index=idx)).to_dict()
    assert d["equity"]["t"] == ["2024-03-01T09:30:00-05:00", "2024-03-01T10:30:00-05:00"]


def test_trades_keep_the_last_ones():
    trades = [{"date": i, "symbol": "X", "from": 0.0, "to": 1.0, "price": 1.0}
              for i in range(10)]
    d = stratq.Result(trades=trades).to_dict(max_trades=3)
    assert [t["date"] for t in d["trades"]] == [7, 8, 9]
    assert d["n_trades"] == 10
    d = stratq.Result(trades=[]).to_dict()
    assert d["trades"] == [] and d["n_trades"] == 0


def test_type_errors():
    with pytest.raises(TypeError, match="metrics must be a dict"):
        stratq.Result(metrics=[1, 2])
    with pytest.raises(TypeError, match="equity must be a pandas Series or a list"):
        stratq.Result(equity="10000")
    with pytest.raises(TypeError, match="equity must be"):
        stratq.Result(equity=pd.DataFrame({"a": [1.0]}))
    with pytest.raises(TypeError, match=r"trades\[1\] must be a dict"):
        stratq.Result(trades=[{}, 5])
    with pytest.raises(TypeError, match=r"extra\['thing'\]: object is not JSON-serializable"):
        stratq.Result(thing=object()).to_dict()
    with pytest.raises(TypeError, match=r"metrics\['x'\]\[0\]"):
        stratq.Result(metrics={"x": [object()]}).to_dict()
    with pytest.raises(TypeError, match="equity: expected a number"):
        stratq.Result(equity=[1.0, "two"]).to_dict()
    with pytest.raises(TypeError, match="from_backtest needs a stratq.Backtest"):
        stratq.Result.from_backtest({"equity": []})
    with pytest.raises(ValueError, match="max_points must be at least 2"):
        stratq.Result(equity=[1.0]).to_dict(max_points=1)


def test_a_multi_symbol_backtest_serializes():
    rng = np.random.default_rng(1)
    idx = pd.bdate_range("2020-01-01", periods=300)
    prices = pd.DataFrame(100 * np.cumprod(1 + rng.normal(0, 0.01, (300, 3)), axis=0),
                          index=idx, columns=["A", "B", "C"])
    weights = pd.DataFrame(rng.choice([-0.5, 0.0, 0.5], (300, 3)), index=idx,
                           columns=["A", "B", "C"])
    bt = stratq.backtest(prices, weights, cost_bps=5)
    d = stratq.Result.from_backtest(bt).to_dict()
    assert round_trip(d) == d
    assert d["n_trades"] == len(bt.trades) > 0
    assert {t["symbol"] for t in d["trades"]} == {"A", "B", "C"}
    assert d["equity"]["v"][-1] == float(f"{bt.equity.iloc[-1]:.6g}")
