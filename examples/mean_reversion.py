"""Bollinger-band mean reversion.

Goes long when the close falls below the lower band (the window's mean minus
k standard deviations) and, with allow_short, short when it rises above the
upper band; either position is closed when the close crosses back over the
moving average.

Data: as for ma_crossover.py. ctx.data is a DataFrame with ``date`` and
``close`` columns (``--data examples/data/prices.csv``), the JSON of
examples/data/prices.json, or a bare JSON list of closes; or
params["dataset"] names a CSV file of the data directory (STRATQ_DATA_DIR),
read with ctx.dataset().

Params (ctx.params), all optional:
    window       band window in days (default 20)
    k            band width in standard deviations (default 2.0)
    allow_short  take short positions above the upper band (default true)
    cost_bps     trading cost in basis points of the traded value (default 5)
    symbol       the price column to trade (default "close")
    dataset      see above

The position (1 long, -1 short, 0 flat) decided on day t's close is held
over day t+1. Returns a stratq.Result (docs/result-shape.md).

    stratq submit examples/mean_reversion.py --data examples/data/prices.csv --wait
"""

import math

import pandas as pd

import stratq


def load_close(ctx):
    """The close prices to trade, as a float Series indexed by date."""
    params = ctx.params or {}
    column = params.get("symbol") or "close"
    if params.get("dataset"):
        source = f"dataset {params['dataset']}"
        frame = ctx.dataset(params["dataset"])
    elif ctx.data is not None:
        source = "ctx.data"
        frame = ctx.data
    else:
        raise ValueError("no prices: submit with --data examples/data/prices.csv, "
                         'or name a dataset in the params ({"dataset": "prices"})')
    if isinstance(frame, list):  # a bare JSON list of closes
        frame = {"close": frame}
    if isinstance(frame, dict):  # the JSON of prices.json
        frame = pd.DataFrame({k: frame[v] for k, v in (("date", "dates"), ("close", "close"))
                              if frame.get(v) is not None})
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"{source} must be a table of prices, not {type(frame).__name__}")
    if column not in frame.columns:
        raise ValueError(f"{source} has no column {column!r} (columns: {list(frame.columns)})")
    close = frame[column].astype("float64")
    close.name = params.get("symbol")  # the symbol in the trades
    if "date" in frame.columns:
        close.index = pd.to_datetime(frame["date"])
    if len(close) < 2:
        raise ValueError(f"{source} has {len(close)} price(s); at least 2 are needed")
    return close, source


def rounded(x, digits=3):
    return None if x is None else round(float(x), digits)


def run(ctx):
    params = ctx.params or {}
    window = params.get("window", 20)
    if isinstance(window, bool) or not isinstance(window, int) or window < 2:
        raise ValueError(f"param 'window' must be an integer >= 2, got {window!r}")
    k = float(params.get("k", 2.0))
    if not k > 0:
        raise ValueError(f"param 'k' must be > 0, got {k!r}")
    allow_short = bool(params.get("allow_short", True))
    cost_bps = float(params.get("cost_bps", 5.0))

    close, source = load_close(ctx)
    ctx.log("prices loaded", source=source, rows=len(close))
    mid = close.rolling(window).mean()
    band = k * close.rolling(window).std()
    lower, upper = mid - band, mid + band

    # The rule is path dependent (hold until the mean is crossed), so walk
    # the series once; ctx.progress is cheap enough to call on every row.
    state = 0.0
    positions = []
    rows = zip(close.to_numpy(), mid.to_numpy(), lower.to_numpy(), upper.to_numpy())
    for i, (price, m, lo, hi) in enumerate(rows):
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
        ctx.progress(0.9 * (i + 1) / len(close), "walking the bands")
    position = pd.Series(positions, index=close.index)

    bt = stratq.backtest(close, position, cost_bps=cost_bps)
    result = stratq.Result.from_backtest(bt, window=window, k=k, allow_short=allow_short,
                                         cost_bps=cost_bps)
    ctx.log("backtest done", trades=len(bt.trades), sharpe=rounded(result.metrics["sharpe"]),
            days_long=int((position > 0).sum()), days_short=int((position < 0).sum()))
    ctx.progress(1.0, "done")
    return result
