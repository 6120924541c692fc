"""Cross-sectional momentum: hold the recent winners of a universe.

Every ``rebalance`` days, rank the symbols by their return over the last
``lookback`` days and hold the ``top_k`` best in equal weights; with
``bottom_k``, also short the ``bottom_k`` worst. Weights are fractions of
equity:

    long only    each winner 1/top_k: fully invested, the weights sum to 1
    long/short   each winner 0.5/top_k, each loser -0.5/bottom_k: gross
                 exposure 1, net 0

Between rebalances the target weights stand (stratq.backtest keeps them
constant; only changes of the target pay ``cost_bps``). Before the first
rebalance (day ``lookback``) the book is flat. Ties rank by symbol name.

Data: a wide table of closes, a ``date`` column and one column per symbol,
as examples/data/universe.csv:
    ctx.data   ``stratq submit ... --data examples/data/universe.csv`` (a
               DataFrame); or
    params["dataset"]
               a CSV file of the data directory (STRATQ_DATA_DIR), read
               with ctx.dataset(): ``universe``.

Params (ctx.params), all optional:
    lookback   days of the trailing return that ranks symbols (default 60)
    top_k      winners held long (default 2)
    bottom_k   losers held short (default 0: long only)
    rebalance  days between rebalances (default 20)
    cost_bps   trading cost in basis points of the traded value (default 10)
    symbols    a list of columns to use (default: every column but date)
    dataset    see above

Returns a stratq.Result (docs/result-shape.md) whose extra has the
parameters and ``rebalances``: one {"date", "long", "short", "weights"} per
rebalance (weights: the non-zero target weights by symbol).

    stratq submit examples/momentum.py --data examples/data/universe.csv \\
        --params '{"lookback": 60, "top_k": 2, "rebalance": 20}' --wait
"""

import pandas as pd

import stratq


def load_universe(ctx):
    """The closes, one float column per symbol, indexed by date."""
    params = ctx.params or {}
    if params.get("dataset"):
        source = f"dataset {params['dataset']}"
        frame = ctx.dataset(params["dataset"])
    elif ctx.data is not None:
        source = "ctx.data"
        frame = ctx.data
    else:
        raise ValueError("no prices: submit with --data examples/data/universe.csv, "
                         'or name a dataset in the params ({"dataset": "universe"})')
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"{source} must be a CSV table of closes (date, then one column "
                         f"per symbol), not {type(frame).__name__}")
    frame = frame.copy()
    if "date" in frame.columns:
        frame.index = pd.to_datetime(frame.pop("date"))
    symbols = params.get("symbols") or list(frame.columns)
    missing = [s for s in symbols if s not in frame.columns]
    if missing:
        raise ValueError(f"{source} has no column {missing[0]!r} (columns: {list(frame.columns)})")
    return frame[symbols].astype("float64"), source


def positive_int(params, name, default, minimum=1):
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"param {name!r} must be an integer >= {minimum}, got {value!r}")
    return value


def rounded(x, digits=3):
    return None if x is None else round(float(x), digits)


def run(ctx):
    params = ctx.params or {}
    lookback = positive_int(params, "lookback", 60)
    top_k = positive_int(params, "top_k", 2)
    bottom_k = positive_int(params, "bottom_k", 0, minimum=0)
    every = positive_int(params, "rebalance", 20)
    cost_bps = float(params.get("cost_bps", 10.0))

    prices, source = load_universe(ctx)
    n_rows, symbols = len(prices), list(prices.columns)
    if top_k + bottom_k > len(symbols):
        raise ValueError(f"top_k + bottom_k ({top_k} + {bottom_k}) is more than the "
                         f"{len(symbols)} symbols")
    if lookback >= n_rows - 1:
        raise ValueError(f"lookback ({lookback}) leaves nothing to trade in {n_rows} rows")
    ctx.log("universe loaded", source=source, rows=n_rows, symbols=symbols)

    trailing = prices / prices.shift(lookback) - 1.0
    long_w = (1.0 if bottom_k == 0 else 0.5) / top_k
    short_w = -0.5 / bottom_k if bottom_k else 0.0
    # NaN rows keep the last target (stratq.backtest forward-fills them).
    weights = pd.DataFrame(float("nan"), index=prices.index, columns=symbols)
    weights.iloc[:lookback] = 0.0
    rebalances = []
    days = range(lookback, n_rows, every)
    for n, i in enumerate(days):
        ranked = trailing.iloc[i].dropna()
        order = sorted(ranked.index, key=lambda s: (-ranked[s], s))
        longs = order[:top_k]
        shorts = order[len(order) - bottom_k:] if bottom_k else []
        row = dict.fromkeys(symbols, 0.0)
        row.update(dict.fromkeys(longs, long_w))
        row.update(dict.fromkeys(shorts, short_w))
        weights.iloc[i] = [row[s] for s in symbols]
        label = prices.index[i]
        date = label.strftime("%Y-%m-%d") if isinstance(label, pd.Timestamp) else label
        rebalances.append({"date": date, "long": longs, "short": shorts,
                           "weights": {s: w for s, w in row.items() if w}})
        ctx.progress(0.8 * (n + 1) / len(days), f"rebalance {n + 1} of {len(days)}")

    bt = stratq.backtest(prices, weights, cost_bps=cost_bps)
    result = stratq.Result.from_backtest(
        bt, lookback=lookback, top_k=top_k, bottom_k=bottom_k, rebalance=every,
        cost_bps=cost_bps, symbols=symbols, rebalances=rebalances)
    held = pd.Series([s for r in rebalances for s in r["long"]]).value_counts()
    ctx.log("backtest done", rebalances=len(rebalances), sharpe=rounded(result.metrics["sharpe"]),
            most_held=held.index[0], times_held=int(held.iloc[0]))
    ctx.progress(1.0, "done")
    return result
