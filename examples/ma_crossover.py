"""Moving-average crossover: long when the fast average is above the slow one.

Input (ctx.data): {"symbol": ..., "dates": [ISO dates], "close": [floats]},
as written by examples/data/make_prices.py; a bare list of closes also works.

Params (ctx.params), all optional:
    fast             fast window in days (default 20)
    slow             slow window in days (default 50), must exceed fast
    initial_capital  starting equity (default 10000)

The position decided on day t's close is held over day t+1, so the strategy
never trades on a price it could not yet have seen. Returned metrics:
    total_return  final equity / initial capital - 1
    sharpe        annualised (252 days) mean / std of daily strategy returns
    max_drawdown  worst peak-to-trough decline of equity, as a fraction <= 0
    trades        number of position changes (entries plus exits)
    final_equity  equity at the last close

    stratq submit examples/ma_crossover.py --data examples/data/prices.json \
        --params '{"fast": 10, "slow": 30}' --wait
"""

import math

import pandas as pd

TRADING_DAYS = 252


def _closes(data):
    if isinstance(data, dict):
        close = data.get("close")
        dates = data.get("dates")
    else:
        close, dates = data, None
    if not isinstance(close, list) or len(close) < 2:
        raise ValueError("ctx.data must hold a list of at least 2 close prices")
    index = pd.to_datetime(dates) if dates else pd.RangeIndex(len(close))
    if len(index) != len(close):
        raise ValueError("ctx.data: 'dates' and 'close' differ in length")
    return pd.Series(close, index=index, dtype="float64")


def _window(params, name, default):
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"param {name!r} must be a positive integer, got {value!r}")
    return value


def _metrics(position, close, capital):
    """Score a 0/1 (or -1/0/1) daily position series against the closes."""
    daily = close.pct_change().fillna(0.0)
    held = position.shift(1).fillna(0.0)
    strategy = held * daily
    equity = capital * (1.0 + strategy).cumprod()
    std = strategy.std()
    sharpe = 0.0 if not std or math.isnan(std) else strategy.mean() / std * math.sqrt(TRADING_DAYS)
    drawdown = (equity / equity.cummax() - 1.0).min()
    return {
        "total_return": round(float(equity.iloc[-1] / capital - 1.0), 6),
        "sharpe": round(float(sharpe), 6),
        "max_drawdown": round(float(drawdown), 6),
        "trades": int(position.diff().fillna(position.iloc[0]).abs().gt(0).sum()),
        "final_equity": round(float(equity.iloc[-1]), 2),
    }


def run(ctx):
    params = ctx.params or {}
    fast = _window(params, "fast", 20)
    slow = _window(params, "slow", 50)
    if fast >= slow:
        raise ValueError(f"fast window ({fast}) must be shorter than slow window ({slow})")
    capital = float(params.get("initial_capital", 10000.0))
    close = _closes(ctx.data)
    fast_ma = close.rolling(fast).mean()
    slow_ma = close.rolling(slow).mean()
    # Comparisons with NaN (before the slow window fills) are False: flat.
    position = (fast_ma > slow_ma).astype("float64")
    result = _metrics(position, close, capital)
    result.update({"fast": fast, "slow": slow, "days": int(len(close))})
    return result
