"""stratq.backtest: the no-look-ahead convention, costs, trades, several
symbols, missing values and input errors, each checked against figures
worked out by hand in the comments."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import stratq

PYTHON_DIR = Path(__file__).resolve().parents[2] / "python"

NAN = float("nan")


def days(n, start="2024-01-01"):
    return pd.date_range(start, periods=n, freq="D")


def values(series):
    return [float(x) for x in series]


def test_single_symbol_by_hand():
    idx = days(4)
    prices = pd.Series([100.0, 110.0, 99.0, 108.9], index=idx, name="AAPL")
    positions = pd.Series([1, 1, 0, 0], index=idx)
    bt = stratq.backtest(prices, positions)
    # asset returns: 110/100-1 = 0.1, 99/110-1 = -0.1, 108.9/99-1 = 0.1
    # r[1] = pos[0] * 0.1 = 0.1; r[2] = pos[1] * -0.1 = -0.1; r[3] = pos[2] * 0.1 = 0
    assert values(bt.returns) == pytest.approx([0.1, -0.1, 0.0], abs=1e-12)
    assert list(bt.returns.index) == list(idx[1:])
    # equity: 10000, 10000*1.1 = 11000, 11000*0.9 = 9900, 9900
    assert values(bt.equity) == pytest.approx([10000.0, 11000.0, 9900.0, 9900.0])
    assert list(bt.equity.index) == list(idx)
    # turnover: |1-0| = 1, 0, |0-1| = 1, 0
    assert values(bt.turnover) == [1.0, 0.0, 1.0, 0.0]
    assert bt.trades == [
        {"date": "2024-01-01", "symbol": "AAPL", "from": 0.0, "to": 1.0, "price": 100.0},
        {"date": "2024-01-03", "symbol": "AAPL", "from": 1.0, "to": 0.0, "price": 99.0},
    ]
    assert values(bt.positions) == [1.0, 1.0, 0.0, 0.0]
    assert bt.initial_capital == 10000.0 and bt.cost_bps == 0.0


def test_no_look_ahead():
    # The position is 1 on the days the price has just doubled, which would
    # be a perfect call if it earned the same day's move. Held over the next
    # day instead, it only ever catches the halving:
    # r[1] = pos[0]*1.0 = 0; r[2] = pos[1]*(-0.5) = -0.5; r[3] = pos[2]*1.0 = 0;
    # r[4] = pos[3]*(-0.5) = -0.5  ->  equity 10000, 10000, 5000, 5000, 2500
    prices = [100.0, 200.0, 100.0, 200.0, 100.0]
    positions = [0, 1, 0, 1, 0]
    bt = stratq.backtest(prices, positions)
    assert values(bt.returns) == [0.0, -0.5, 0.0, -0.5]
    assert values(bt.equity) == [10000.0, 10000.0, 5000.0, 5000.0, 2500.0]


def test_a_decision_never_changes_the_past():
    rng = np.random.default_rng(7)
    prices = pd.Series(100 * np.cumprod(1 + rng.normal(0, 0.01, 60)), index=days(60))
    positions = pd.Series(rng.choice([-1.0, 0.0, 0.5, 1.0], 60), index=prices.index)
    base = stratq.backtest(prices, positions, cost_bps=25)
    for k in (0, 17, 42, 59):
        changed = positions.copy()
        changed.iloc[k:] = 3.0 - changed.iloc[k:]  # a different decision from row k on
        bt = stratq.backtest(prices, changed, cost_bps=25)
        # Equity up to and including row k's close cannot depend on it.
        assert values(bt.equity.iloc[:k + 1]) == values(base.equity.iloc[:k + 1])
        if k + 1 < 60:
            assert bt.equity.iloc[k + 1] != base.equity.iloc[k + 1]


def test_costs_by_hand():
    # Flat prices: only costs move equity. cost = 10 bps = 0.001 per unit of turnover.
    # positions 1, -1, -1, 0: turnover |1-0| = 1, |-1-1| = 2, 0, |0+1| = 1
    # r[1] = 1*0 - 0.001*1 = -0.001; r[2] = -1*0 - 0.001*2 = -0.002; r[3] = -0.001*0 = 0
    # (the exit on the last row is listed but its cost never charged)
    # equity: 10000, 9990, 9990*0.998 = 9970.02, 9970.02
    bt = stratq.backtest([100.0] * 4, [1, -1, -1, 0], cost_bps=10)
    assert values(bt.turnover) == [1.0, 2.0, 0.0, 1.0]
    assert values(bt.returns) == pytest.approx([-0.001, -0.002, 0.0], abs=1e-15)
    assert values(bt.equity) == pytest.approx([10000.0, 9990.0, 9970.02, 9970.02], abs=1e-9)
    assert [(t["from"], t["to"]) for t in bt.trades] == [(0.0, 1.0), (1.0, -1.0), (-1.0, 0.0)]


def test_cost_and_move_in_one_period():
    # pos 0.5, price +10%, 20 bps on a turnover of 0.5:
    # r[1] = 0.5*0.1 - 0.002*0.5 = 0.05 - 0.001 = 0.049  ->  equity 10490
    bt = stratq.backtest([100.0, 110.0], [0.5, 0.5], cost_bps=20)
    assert values(bt.returns) == pytest.approx([0.049], abs=1e-15)
    assert values(bt.equity) == pytest.approx([10000.0, 10490.0])
    no_cost = stratq.backtest([100.0, 110.0], [0.5, 0.5])
    assert values(no_cost.equity) == pytest.approx([10000.0, 10500.0])


def test_several_symbols_with_weights():
    idx = days(3)
    prices = pd.DataFrame({"A": [100.0, 110.0, 121.0], "B": [50.0, 45.0, 45.0]}, index=idx)
    # Columns in the other order on purpose: they are matched by name.
    positions = pd.DataFrame({"B": [0.5, -0.5, -0.5], "A": [0.5, 0.5, 0.0]}, index=idx)
    bt = stratq.backtest(prices, positions, cost_bps=10)
    # asset returns: A 0.1, 0.1; B 45/50-1 = -0.1, 0
    # turnover[0] = 0.5 + 0.5 = 1; turnover[1] = |0.5-0.5| + |-0.5-0.5| = 1;
    # turnover[2] = |0-0.5| + 0 = 0.5
    # r[1] = 0.5*0.1 + 0.5*(-0.1) - 0.001*1 = -0.001
    # r[2] = 0.5*0.1 + (-0.5)*0 - 0.001*1 = 0.049
    # equity: 10000, 9990, 9990*1.049 = 10479.51
    assert values(bt.turnover) == [1.0, 1.0, 0.5]
    assert values(bt.returns) == pytest.approx([-0.001, 0.049], abs=1e-15)
    assert values(bt.equity) == pytest.approx([10000.0, 9990.0, 10479.51])
    assert list(bt.positions.columns) == ["A", "B"]
    assert bt.trades == [
        {"date": "2024-01-01", "symbol": "A", "from": 0.0, "to": 0.5, "price": 100.0},
        {"date": "2024-01-01", "symbol": "B", "from": 0.0, "to": 0.5, "price": 50.0},
        {"date": "2024-01-02", "symbol": "B", "from": 0.5, "to": -0.5, "price": 45.0},
        {"date": "2024-01-03", "symbol": "A", "from": 0.5, "to": 0.0, "price": 121.0},
    ]


def test_two_dimensional_lists():
    # Same as above without labels: columns 0 and 1, rows 0, 1, 2, no costs.
    # r[1] = 0.5*0.1 + 0.5*(-0.1) = 0; r[2] = 0.5*0.1 - 0.5*0 = 0.05
    bt = stratq.backtest([[100, 50], [110, 45], [121, 45]],
                         [[0.5, 0.5], [0.5, -0.5], [0.0, -0.5]])
    assert values(bt.equity) == pytest.approx([10000.0, 10000.0, 10500.0])
    assert bt.trades[0] == {"date": 0, "symbol": 0, "from": 0.0, "to": 0.5, "price": 100.0}
    assert bt.trades[-1] == {"date": 2, "symbol": 0, "from": 0.5, "to": 0.0, "price": 121.0}


def test_plain_lists_and_capital():
    bt = stratq.backtest([100, 110, 99], [1, 1, 1], initial_capital=1000)
    # 1000 * 1.1 = 1100; 1100 * 0.9 = 990
    assert values(bt.equity) == pytest.approx([1000.0, 1100.0, 990.0])
    assert isinstance(bt.equity, pd.Series) and isinstance(bt.returns, pd.Series)
    assert list(bt.equity.index) == [0, 1, 2]
    assert bt.trades == [{"date": 0, "symbol": None, "from": 0.0, "to": 1.0, "price": 100.0}]
    assert json.loads(json.dumps(bt.trades, allow_nan=False)) == bt.trades


def test_a_number_as_position_is_buy_and_hold():
    prices = pd.Series([20.0, 25.0, 22.0, 30.0], index=days(4))
    bt = stratq.backtest(prices, 1.0)
    # fully invested throughout: equity follows the price, 10000 * p / 20
    assert values(bt.equity) == pytest.approx([10000.0, 12500.0, 11000.0, 15000.0])
    assert len(bt.trades) == 1
    boolean = stratq.backtest(prices, prices > 21)  # False, True, True, True
    # r[1] = 0; r[2] = 22/25-1 = -0.12; r[3] = 30/22-1; equity 10000, 10000, 8800, 12000
    assert values(boolean.equity) == pytest.approx([10000.0, 10000.0, 8800.0, 12000.0])


def test_missing_values():
    # prices NaN, NaN, 100, 110, NaN, 121; positions 1, NaN, NaN, 0.5, NaN, 0
    # positions forward-filled: 1, 1, 1, 0.5, 0.5, 0; the two leading rows
    # without a price are dropped; the missing price on row 4 is forward-filled:
    # prices 100, 110, 110, 121; positions 1, 0.5, 0.5, 0
    # r = 1*0.1 = 0.1, 0.5*0 = 0, 0.5*0.1 = 0.05 -> equity 10000, 11000, 11000, 11550
    prices = pd.Series([NAN, NAN, 100.0, 110.0, NAN, 121.0])
    positions = pd.Series([1, NAN, NAN, 0.5, NAN, 0])
    bt = stratq.backtest(prices, positions)
    assert list(bt.equity.index) == [2, 3, 4, 5]
    assert values(bt.equity) == pytest.approx([10000.0, 11000.0, 11000.0, 11550.0])
    assert values(bt.positions) == [1.0, 0.5, 0.5, 0.0]
    assert values(bt.prices) == [100.0, 110.0, 110.0, 121.0]
    assert [(t["date"], t["from"], t["to"], t["price"]) for t in bt.trades] == [
        (2, 0.0, 1.0, 100.0), (3, 1.0, 0.5, 110.0), (5, 0.5, 0.0, 121.0)]


def test_leading_nan_position_is_flat():
    bt = stratq.backtest([100.0, 200.0, 400.0], [NAN, 1, 1])
    # r[1] = 0 * 1.0 = 0 (flat); r[2] = 1 * 1.0 = 1 -> 10000, 10000, 20000
    assert values(bt.equity) == [10000.0, 10000.0, 20000.0]


def test_several_symbols_drop_rows_until_every_symbol_has_a_price():
    prices = pd.DataFrame({"A": [100.0, 100.0, 110.0], "B": [NAN, 50.0, 55.0]})
    bt = stratq.backtest(prices, pd.DataFrame({"A": [1.0, 1.0, 1.0], "B": [0.0, 0.0, 0.0]}))
    # row 0 dropped (B has no price), so A's entry happens on row 1:
    # r[2] = 1 * (110/100 - 1) = 0.1 -> equity 10000, 11000
    assert list(bt.equity.index) == [1, 2]
    assert values(bt.equity) == pytest.approx([10000.0, 11000.0])
    assert bt.trades == [{"date": 1, "symbol": "A", "from": 0.0, "to": 1.0, "price": 100.0}]


def test_intraday_dates_are_full_iso_stamps():
    idx = pd.date_range("2024-03-01 09:30", periods=3, freq="30min")
    bt = stratq.backtest(pd.Series([10.0, 11.0, 12.0], index=idx), [0, 1, 1])
    assert bt.trades[0]["date"] == "2024-03-01T10:00:00"
    utc = stratq.backtest(pd.Series([10.0, 11.0], index=days(2).tz_localize("UTC")), [1, 1])
    assert utc.trades[0]["date"] == "2024-01-01T00:00:00+00:00"


@pytest.mark.parametrize("prices, positions, kwargs, message", [
    ([100, 101, 102], [1, 1], {}, "positions has 2 rows but prices has 3"),
    ([100, 0, 102], [1, 1, 1], {}, "prices must be > 0"),
    ([100, -5, 102], [1, 1, 1], {}, "prices must be > 0"),
    ([100, float("inf")], [1, 1], {}, "prices: infinite"),
    ([NAN, NAN], [1, 1], {}, "prices: every value is missing"),
    ([NAN, 100.0], [1, 1], {}, "need at least 2 rows"),
    ([100.0], [1], {}, "need at least 2 rows"),
    ([], [], {}, "prices is empty"),
    (["a", "b"], [1, 1], {}, "prices: values must be numbers"),
    ({"a": 1}, [1], {}, "prices must be a pandas Series"),
    ([100, 101], [1, float("inf")], {}, "positions: infinite"),
    ([100, 101], ["x", 1], {}, "positions: values must be numbers"),
    ([100, 101], None, {}, "positions must be"),
    ([100, 101], [[1, 1], [1, 1]], {}, "positions: expected shape (2,)"),
    ([100, 101], [1, 1], {"cost_bps": -1}, "cost_bps must be a finite number >= 0"),
    ([100, 101], [1, 1], {"cost_bps": NAN}, "cost_bps"),
    ([100, 101], [1, 1], {"initial_capital": 0}, "initial_capital must be a finite number > 0"),
    ([100, 101], [1, 1], {"initial_capital": "lots"}, "initial_capital must be a number"),
])
def test_input_errors(prices, positions, kwargs, message):
    with pytest.raises(ValueError) as info:
        stratq.backtest(prices, positions, **kwargs)
    assert message in str(info.value)


def test_index_errors():
    prices = pd.Series([1.0, 2.0, 3.0], index=days(3))
    with pytest.raises(ValueError, match="positions: the index differs"):
        stratq.backtest(prices, pd.Series([1, 1, 1], index=days(3, "2024-02-01")))
    with pytest.raises(ValueError, match="sorted in increasing order"):
        stratq.backtest(prices.iloc[::-1], [1, 1, 1])
    with pytest.raises(ValueError, match="duplicate labels"):
        stratq.backtest(pd.Series([1.0, 2.0], index=[0, 0]), [1, 1])
    with pytest.raises(ValueError, match="at Timestamp\\('2024-01-02"):
        stratq.backtest(pd.Series([1.0, -2.0, 3.0], index=days(3)), [1, 1, 1])


def test_column_errors():
    prices = pd.DataFrame({"A": [1.0, 2.0], "B": [1.0, 2.0]})
    with pytest.raises(ValueError, match=r"missing \['B'\], unknown \['C'\]"):
        stratq.backtest(prices, pd.DataFrame({"A": [1, 1], "C": [1, 1]}))
    with pytest.raises(ValueError, match="must be a DataFrame with the same columns"):
        stratq.backtest(prices, pd.Series([1, 1]))
    with pytest.raises(ValueError, match=r"expected shape \(2, 2\)"):
        stratq.backtest(prices, [1, 1])


def test_importing_stratq_loads_neither_numpy_nor_pandas():
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import stratq; "
            "print(sorted(m for m in ('numpy', 'pandas', 'stratq._engine', 'stratq._convert')"
            " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-I", "-B", "-c", code, str(PYTHON_DIR)],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_values_are_plain_python():
    bt = stratq.backtest(np.array([100.0, 110.0]), np.array([1, 0]))
    trade = bt.trades[0]
    assert all(type(trade[k]) is float for k in ("from", "to", "price"))
    assert type(trade["date"]) is int
    assert not math.isnan(bt.equity.iloc[-1])
