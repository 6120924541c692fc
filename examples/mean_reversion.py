"""Bollinger-band mean reversion.

Goes long when the close falls below the lower band (mean - k * std over the
window) and short when it rises above the upper band; either position is
closed when the close crosses back over the moving average.

Input (ctx.data): {"symbol": ..., "dates": [ISO dates], "close": [floats]},
as written by examples/data/make_prices.py; a bare list of closes also works.

Params (ctx.params), all optional:
    window           band window in days (default 20)
    k                band width in standard deviations (default 2.0)
    allow_short      take short positions above the upper band (default true)
    initial_capital  starting equity (default 10000)

The position decided on day t's close is held over day t+1. Returns the same
metrics as ma_crossover.py: total_return, sharpe (annualised, 252 days),
max_drawdown (fraction <= 0), trades (position changes), final_equity.

    stratq submit examples/mean_reversion.py --data examples/data/prices.json --wait
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


def _metrics(position, close, capital):
    """Score a -1/0/1 daily position series against the closes."""
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
    window = params.get("window", 20)
    if isinstance(window, bool) or not isinstance(window, int) or window < 2:
        raise ValueError(f"param 'window' must be an integer >= 2, got {window!r}")
    k = float(params.get("k", 2.0))
    if not k > 0:
        raise ValueError(f"param 'k' must be > 0, got {k!r}")
    allow_short = bool(params.get("allow_short", True))
    capital = float(params.get("initial_capital", 10000.0))

    close = _closes(ctx.data)
    mid = close.rolling(window).mean()
    band = k * close.rolling(window).std()
    lower, upper = mid - band, mid + band

    # The band rule is path dependent (hold until the mean is crossed), so
    # walk the series once instead of vectorising.
    state = 0.0
    positions = []
    for price, m, lo, hi in zip(close.to_numpy(), mid.to_numpy(), lower.to_numpy(), upper.to_numpy()):
        if math.isnan(m):
            state = 0.0
        elif state == 0.0:
            if price < lo:
                state = 1.0
            elif allow_short and price > hi:
                state = -1.0
        elif state > 0 and price >= m:
            state = 0.0
        elif state < 0 and price <= m:
            state = 0.0
        positions.append(state)
    position = pd.Series(positions, index=close.index)

    result = _metrics(position, close, capital)
    result.update({"window": window, "k": k, "days": int(len(close))})
    return result
