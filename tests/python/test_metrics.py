"""stratq.metrics: every figure against arithmetic done by hand (in the
comments), the degenerate cases, and plain JSON values."""

import json
import math

import numpy as np
import pandas as pd
import pytest

import stratq

NAN = float("nan")
KEYS = {"total_return", "cagr", "annual_volatility", "sharpe", "sortino", "max_drawdown",
        "max_drawdown_duration", "win_rate", "turnover", "n_periods"}

# Returns chosen so that the arithmetic is exact by hand:
# r = 0.03, -0.01, 0.03, -0.01, 0.01
# mean = 0.05 / 5 = 0.01; deviations +0.02, -0.02, +0.02, -0.02, 0
# sample variance = 4 * 0.0004 / (5 - 1) = 0.0004 -> std = 0.02
R5 = [0.03, -0.01, 0.03, -0.01, 0.01]


def test_keys_and_types():
    m = stratq.metrics(R5, periods_per_year=4)
    assert set(m) == KEYS
    for key, value in m.items():
        assert value is None or type(value) in (int, float), key
    assert type(m["n_periods"]) is int and type(m["max_drawdown_duration"]) is int
    assert json.loads(json.dumps(m, allow_nan=False)) == m


def test_volatility_sharpe_sortino_by_hand():
    m = stratq.metrics(R5, periods_per_year=4)
    # annual_volatility = 0.02 * sqrt(4) = 0.04
    assert m["annual_volatility"] == pytest.approx(0.04, rel=1e-12)
    # sharpe = 0.01 / 0.02 * sqrt(4) = 1.0
    assert m["sharpe"] == pytest.approx(1.0, rel=1e-12)
    # downside: min(r, 0) = 0, -0.01, 0, -0.01, 0 -> mean square = 0.0002 / 5 = 0.00004
    # downside deviation = sqrt(0.00004) = 0.002 * sqrt(10)
    # sortino = 0.01 / (0.002 * sqrt(10)) * sqrt(4) = 5 / sqrt(10) * 2 = sqrt(10)
    assert m["sortino"] == pytest.approx(math.sqrt(10), rel=1e-12)
    # wins: 3 positive out of 5 non-zero
    assert m["win_rate"] == pytest.approx(0.6)
    assert m["n_periods"] == 5
    assert m["turnover"] is None


def test_total_return_drawdown_and_duration_by_hand():
    m = stratq.metrics(R5, periods_per_year=4)
    # wealth: 1.03; 1.03*0.99 = 1.0197; 1.0197*1.03 = 1.050291;
    # 1.050291*0.99 = 1.03978809; 1.03978809*1.01 = 1.0501859709
    assert m["total_return"] == pytest.approx(0.0501859709, abs=1e-12)
    # peaks 1.03, 1.03, 1.050291, 1.050291, 1.050291
    # drawdowns 0, 0.99 - 1 = -0.01, 0, -0.01, 0.99 * 1.01 - 1 = -0.0001
    assert m["max_drawdown"] == pytest.approx(-0.01, abs=1e-12)
    # under water: row 1 (a run of 1), rows 3 and 4 (a run of 2, still open)
    assert m["max_drawdown_duration"] == 2


def test_three_returns_by_hand():
    # r = 0.1, -0.05, 0.02; wealth 1.1, 1.045, 1.0659 -> total 0.0659
    m = stratq.metrics([0.1, -0.05, 0.02], periods_per_year=252)
    assert m["total_return"] == pytest.approx(0.0659, abs=1e-12)
    # mean = 0.07/3; deviations 0.23/3, -0.22/3, -0.01/3;
    # sum of squares = (0.0529 + 0.0484 + 0.0001) / 9 = 0.1014 / 9;
    # sample variance = 0.1014 / 18; annualised: sqrt(0.1014 / 18 * 252) = sqrt(1.4196)
    assert m["annual_volatility"] == pytest.approx(math.sqrt(1.4196), rel=1e-12)
    assert m["annual_volatility"] == pytest.approx(1.191470, abs=1e-6)
    # sharpe = (0.07/3) / sqrt(0.1014/18) * sqrt(252) = 4.935082
    assert m["sharpe"] == pytest.approx(4.935082, abs=1e-6)
    # downside deviation = sqrt(0.05^2 / 3) = 0.05 / sqrt(3)
    # sortino = (0.07/3) / (0.05/sqrt(3)) * sqrt(252) = (7/15) * sqrt(756) = 12.831212
    assert m["sortino"] == pytest.approx(7 / 15 * math.sqrt(756), rel=1e-12)
    assert m["sortino"] == pytest.approx(12.831212, abs=1e-6)
    # drawdown 1.045 / 1.1 - 1 = -0.05, under water for the last 2 periods
    assert m["max_drawdown"] == pytest.approx(-0.05, abs=1e-12)
    assert m["max_drawdown_duration"] == 2
    assert m["win_rate"] == pytest.approx(2 / 3)
    # cagr = 1.0659 ** (252 / 3) - 1 = 1.0659 ** 84 - 1, about 211.9
    assert m["cagr"] == pytest.approx(211.903512, rel=1e-6)


def test_cagr_uses_periods_per_year_over_n():
    r = [0.1, -0.05, 0.02]  # total 0.0659
    # n = periods_per_year: one year, cagr = total
    assert stratq.metrics(r, periods_per_year=3)["cagr"] == pytest.approx(0.0659, abs=1e-12)
    # half a year: cagr = 1.0659^2 - 1 = 1.13614281 - 1
    assert stratq.metrics(r, periods_per_year=6)["cagr"] == pytest.approx(0.13614281, abs=1e-12)
    # two years: cagr = sqrt(1.0659) - 1 = 0.032424...
    assert stratq.metrics(r, periods_per_year=1.5)["cagr"] == pytest.approx(
        0.0324243, abs=1e-7)


def test_risk_free_rate():
    # 4% a year over 4 periods = 0.01 per period: excess = 0.02, -0.02, 0.02, -0.02, 0
    m = stratq.metrics(R5, periods_per_year=4, risk_free=0.04)
    assert m["sharpe"] == pytest.approx(0.0, abs=1e-12)
    assert m["sortino"] == pytest.approx(0.0, abs=1e-12)
    # 2% a year: 0.005 per period, mean excess 0.005: sharpe = 0.005 / 0.02 * 2 = 0.5
    # downside: min(e, 0) = 0, -0.015, 0, -0.015, 0 -> sqrt(2 * 0.015^2 / 5) = 0.015 * sqrt(0.4)
    # sortino = 0.005 / (0.015 * sqrt(0.4)) * 2 = 2 / (3 * sqrt(0.4))
    m = stratq.metrics(R5, periods_per_year=4, risk_free=0.02)
    assert m["sharpe"] == pytest.approx(0.5, rel=1e-12)
    assert m["sortino"] == pytest.approx(2 / (3 * math.sqrt(0.4)), rel=1e-12)
    # volatility, return and drawdown do not change
    assert m["annual_volatility"] == pytest.approx(0.04, rel=1e-12)
    assert m["total_return"] == pytest.approx(0.0501859709, abs=1e-12)


def test_drawdown_counts_the_start_as_a_peak():
    # wealth 0.9, 0.945, 1.0017, 1.011717: below the starting 1 for 2 periods
    m = stratq.metrics([-0.1, 0.05, 0.06, 0.01])
    assert m["max_drawdown"] == pytest.approx(-0.1, abs=1e-12)
    assert m["max_drawdown_duration"] == 2


def test_drawdown_duration_takes_the_longest_run():
    # wealth 1.1, 0.99, 1.0395, 1.091475, 1.30977, 1.2966723
    # under water: rows 1, 2, 3 (below 1.1), then row 5 (below 1.30977)
    m = stratq.metrics([0.1, -0.1, 0.05, 0.05, 0.2, -0.01])
    assert m["max_drawdown_duration"] == 3
    # deepest: 0.99 / 1.1 - 1 = -0.1
    assert m["max_drawdown"] == pytest.approx(-0.1, abs=1e-12)
    # wealth 1.1, 0.99, 1.188, 0.594, 1.188: back at the peak exactly on the last row
    m = stratq.metrics([0.1, -0.1, 0.2, -0.5, 1.0])
    assert m["max_drawdown"] == pytest.approx(-0.5, abs=1e-12)
    assert m["max_drawdown_duration"] == 1


def test_turnover_from_positions():
    # 1, 1, 0, -1, -1: |1-0| + 0 + |0-1| + |-1-0| + 0 = 3 over 5 rows = 0.6
    m = stratq.metrics(R5, positions=[1, 1, 0, -1, -1])
    assert m["turnover"] == pytest.approx(0.6)
    # two symbols: rows 0.5+0.5 = 1, 0+1 = 1, 0.5+0 = 0.5 -> 2.5 / 3
    frame = pd.DataFrame({"A": [0.5, 0.5, 0.0], "B": [0.5, -0.5, -0.5]})
    assert stratq.metrics(R5, positions=frame)["turnover"] == pytest.approx(2.5 / 3)
    # NaN forward-filled, leading NaN flat: 0, 1, 1, 0 -> 0 + 1 + 0 + 1 = 2 over 4
    assert stratq.metrics(R5, positions=[NAN, 1, NAN, 0])["turnover"] == pytest.approx(0.5)


def test_metrics_of_a_backtest():
    # prices 100, 110, 99, 108.9 with positions 1, 1, 0, 0: returns 0.1, -0.1, 0
    bt = stratq.backtest([100.0, 110.0, 99.0, 108.9], [1, 1, 0, 0])
    m = stratq.metrics(bt)
    assert m["n_periods"] == 3
    # 1.1 * 0.9 - 1 = -0.01
    assert m["total_return"] == pytest.approx(-0.01, abs=1e-12)
    # turnover 1, 0, 1, 0 over 4 rows
    assert m["turnover"] == pytest.approx(0.5)
    # one win, one loss, one flat period (not counted)
    assert m["win_rate"] == pytest.approx(0.5)
    # wealth 1.1, 0.99, 0.99: 0.99 / 1.1 - 1 = -0.1 for the last 2 periods
    assert m["max_drawdown"] == pytest.approx(-0.1, abs=1e-12)
    assert m["max_drawdown_duration"] == 2
    assert m == stratq.metrics(bt.returns, positions=bt.positions)
    assert stratq.metrics(bt, positions=[0, 0, 0, 0])["turnover"] == 0.0


def test_inputs_of_every_kind_agree():
    expected = stratq.metrics(R5)
    idx = pd.date_range("2024-01-01", periods=5)
    assert stratq.metrics(tuple(R5)) == expected
    assert stratq.metrics(np.array(R5)) == expected
    assert stratq.metrics(pd.Series(R5, index=idx)) == expected
    assert stratq.metrics(pd.DataFrame({"r": R5})) == expected
    # the leading NaN that pct_change leaves is dropped
    assert stratq.metrics([NAN] + R5) == expected


def test_constant_returns():
    m = stratq.metrics([0.01, 0.01, 0.01, 0.01], periods_per_year=4)
    # no spread: volatility exactly 0, sharpe undefined (None), no downside: sortino None
    assert m["annual_volatility"] == 0.0
    assert m["sharpe"] is None and m["sortino"] is None
    assert m["max_drawdown"] == 0.0 and m["max_drawdown_duration"] == 0
    assert m["win_rate"] == 1.0
    # 1.01^4 - 1 = 0.04060401 over exactly one year
    assert m["total_return"] == pytest.approx(0.04060401, abs=1e-12)
    assert m["cagr"] == pytest.approx(0.04060401, abs=1e-12)


def test_all_zero_returns():
    m = stratq.metrics([0.0, 0.0, 0.0])
    assert m["win_rate"] is None
    assert m["total_return"] == 0.0 and m["cagr"] == 0.0
    assert m["annual_volatility"] == 0.0 and m["sharpe"] is None and m["sortino"] is None
    assert m["max_drawdown"] == 0.0 and m["max_drawdown_duration"] == 0


def test_one_period():
    m = stratq.metrics([0.05], periods_per_year=4)
    assert m["n_periods"] == 1 and m["total_return"] == pytest.approx(0.05)
    assert m["annual_volatility"] is None and m["sharpe"] is None
    assert m["sortino"] is None
    # a loss: downside = sqrt(0.05^2 / 1) = 0.05; sortino = -0.05 / 0.05 * sqrt(4) = -2
    m = stratq.metrics([-0.05], periods_per_year=4)
    assert m["sortino"] == pytest.approx(-2.0)
    assert m["max_drawdown"] == pytest.approx(-0.05) and m["max_drawdown_duration"] == 1


def test_everything_lost():
    # wealth 1.5, then 1.5 * 0 = 0: total -1, cagr -1, drawdown 0/1.5 - 1 = -1
    m = stratq.metrics([0.5, -1.0])
    assert m["total_return"] == pytest.approx(-1.0)
    assert m["cagr"] == -1.0
    assert m["max_drawdown"] == pytest.approx(-1.0)
    # levered past zero: wealth -0.5 -> total -1.5, cagr still -1, drawdown -1.5
    m = stratq.metrics([-1.5])
    assert m["cagr"] == -1.0 and m["max_drawdown"] == pytest.approx(-1.5)


def test_overflowing_cagr_is_none():
    # 1,000,001 ** 252 does not fit in a float
    m = stratq.metrics([1e6])
    assert m["cagr"] is None
    assert m["total_return"] == pytest.approx(1e6)
    json.dumps(m, allow_nan=False)


@pytest.mark.parametrize("returns, kwargs, message", [
    ([], {}, "returns is empty"),
    ([NAN, NAN], {}, "returns is empty"),
    ([0.1, NAN, 0.2], {}, "returns: NaN at position 1"),
    ([0.1, float("inf")], {}, "returns: infinite value at position 1"),
    (["a"], {}, "returns: values must be numbers"),
    ([[0.1, 0.2]], {}, "returns: expected one dimension"),
    ("0.1", {}, "returns must be"),
    (pd.DataFrame({"a": [0.1], "b": [0.2]}), {}, "returns: expected one series"),
    ([0.1], {"periods_per_year": 0}, "periods_per_year must be > 0"),
    ([0.1], {"periods_per_year": NAN}, "periods_per_year must be finite"),
    ([0.1], {"periods_per_year": "daily"}, "periods_per_year must be a number"),
    ([0.1], {"risk_free": float("inf")}, "risk_free must be finite"),
    ([0.1], {"positions": []}, "positions is empty"),
    ([0.1], {"positions": [float("inf")]}, "positions: infinite"),
    ([0.1], {"positions": "long"}, "positions must be"),
])
def test_input_errors(returns, kwargs, message):
    with pytest.raises(ValueError) as info:
        stratq.metrics(returns, **kwargs)
    assert message in str(info.value)


def test_nan_is_named_by_its_label():
    r = pd.Series([0.1, NAN], index=pd.date_range("2024-01-01", periods=2))
    with pytest.raises(ValueError, match="returns: NaN at Timestamp\\('2024-01-02"):
        stratq.metrics(r)


def test_numpy_inputs_give_plain_values():
    m = stratq.metrics(np.array([0.01, -0.02, 0.03], dtype=np.float32),
                       periods_per_year=np.int64(252), positions=np.array([1, 0, 1]))
    for key, value in m.items():
        assert value is None or type(value) in (int, float), key
