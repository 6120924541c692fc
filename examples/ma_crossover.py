"""Moving-average crossover: long when the fast average is above the slow one.

Data, one of:
    ctx.data   a DataFrame with a ``date`` and a ``close`` column, as from
               ``stratq submit ... --data examples/data/prices.csv``; or the
               JSON of examples/data/prices.json ({"dates": [...], "close":
               [...]}, given with ``--data examples/data/prices.json``), or
               a bare JSON list of closes;
    params["dataset"]
               the name of a CSV file in the workers' data directory
               (STRATQ_DATA_DIR), read with ctx.dataset(): ``prices``, or
               ``universe`` together with ``symbol``.

Params (ctx.params), all optional:
    fast      fast window in days (default 20)
    slow      slow window in days (default 50), longer than fast
    cost_bps  trading cost in basis points of the traded value (default 5)
    symbol    the price column to trade (default "close")
    dataset   see above

The position (1 = long, 0 = flat) decided on day t's close is held over day
t+1 (stratq.backtest never trades on a price it could not have seen). The
result is a stratq.Result (docs/result-shape.md): metrics, equity curve,
trades, and the parameters used under "extra".

    stratq submit examples/ma_crossover.py --data examples/data/prices.csv \\
        --params '{"fast": 10, "slow": 30}' --wait
"""

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
    # The Series' name is the symbol in the trades: the column's when one
    # was chosen, none for a plain close column.
    close.name = params.get("symbol")
    if "date" in frame.columns:
        close.index = pd.to_datetime(frame["date"])
    if len(close) < 2:
        raise ValueError(f"{source} has {len(close)} price(s); at least 2 are needed")
    return close, source


def window(params, name, default):
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"param {name!r} must be a positive integer, got {value!r}")
    return value


def rounded(x, digits=3):
    return None if x is None else round(float(x), digits)


def run(ctx):
    params = ctx.params or {}
    fast = window(params, "fast", 20)
    slow = window(params, "slow", 50)
    if fast >= slow:
        raise ValueError(f"fast window ({fast}) must be shorter than slow window ({slow})")
    cost_bps = float(params.get("cost_bps", 5.0))

    close, source = load_close(ctx)
    ctx.log("prices loaded", source=source, rows=len(close),
            first=str(close.index[0])[:10], last=str(close.index[-1])[:10])
    ctx.progress(0.3, "prices loaded")

    # Before the slow window fills, the averages are NaN and the comparison
    # is False: flat.
    position = (close.rolling(fast).mean() > close.rolling(slow).mean()).astype("float64")
    ctx.progress(0.6, "signals ready")

    bt = stratq.backtest(close, position, cost_bps=cost_bps)
    result = stratq.Result.from_backtest(bt, fast=fast, slow=slow, cost_bps=cost_bps)
    ctx.log("backtest done", trades=len(bt.trades), sharpe=rounded(result.metrics["sharpe"]),
            final_equity=round(float(bt.equity.iloc[-1]), 2))
    ctx.progress(1.0, "done")
    return result
