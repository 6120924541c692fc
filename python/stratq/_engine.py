"""The computations behind stratq.backtest and stratq.metrics (documented
there), imported on first use so that ``import stratq``, which runs in every
job, does not compile them."""

import math

import numpy as np
import pandas as pd

from ._backtest import Backtest
from ._convert import index_labels, scalar

# Drawdowns shallower than this are floating-point noise (a curve that gets
# back to its peak exactly may land a few ulps below it).
DRAWDOWN_EPSILON = 1e-12


def run_backtest(prices, positions, cost_bps, initial_capital):
    """stratq.backtest's body; see its docstring for the conventions."""
    cost_bps = _number_arg("cost_bps", cost_bps, allow_zero=True)
    initial_capital = _number_arg("initial_capital", initial_capital, allow_zero=False)

    px = _prices(prices)
    pos = _positions_like(positions, px)

    # Forward-fill positions before anything is dropped; no decision yet = flat.
    pos = pos.ffill().fillna(0.0)

    valid = px.notna() if px.ndim == 1 else px.notna().all(axis=1)
    if not valid.any():
        raise ValueError("prices: every value is missing (NaN)")
    first = int(np.argmax(valid.to_numpy()))
    px = px.iloc[first:].ffill()
    pos = pos.iloc[first:]
    n = len(px)
    if n < 2:
        raise ValueError(f"prices: need at least 2 rows with prices, got {n}"
                         + (f" after dropping {first} leading row(s) without one" if first else ""))

    p = px.to_numpy(dtype="float64").reshape(n, -1)
    w = pos.to_numpy(dtype="float64").reshape(n, -1)
    held_before = np.vstack([np.zeros((1, w.shape[1])), w[:-1]])
    changed = w != held_before
    turnover = np.abs(w - held_before).sum(axis=1)
    asset = p[1:] / p[:-1] - 1.0
    rets = (w[:-1] * asset).sum(axis=1) - cost_bps / 10_000.0 * turnover[:-1]
    growth = np.cumprod(1.0 + rets)
    equity = initial_capital * np.concatenate([[1.0], growth])

    index = px.index
    rows, cols = np.nonzero(changed)
    dates = index_labels(index, rows) if len(rows) else []
    if px.ndim == 1:
        symbols = [_symbol(px.name)]
    else:
        symbols = [_symbol(c) for c in px.columns]
    trades = [
        {"date": dates[i], "symbol": symbols[c], "from": float(held_before[r, c]),
         "to": float(w[r, c]), "price": float(p[r, c])}
        for i, (r, c) in enumerate(zip(rows.tolist(), cols.tolist()))
    ]
    return Backtest(
        equity=pd.Series(equity, index=index, name="equity"),
        returns=pd.Series(rets, index=index[1:], name="returns"),
        positions=pos,
        trades=trades,
        turnover=pd.Series(turnover, index=index, name="turnover"),
        prices=px,
        cost_bps=cost_bps,
        initial_capital=initial_capital,
    )


def _symbol(name):
    if name is None:
        return None
    try:
        return scalar(name)
    except TypeError:
        return str(name)


def _number_arg(name, value, allow_zero):
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(x) or x < 0 or (x == 0 and not allow_zero):
        need = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {need}, got {value!r}")
    return x


def _as_float(name, obj):
    """obj (a Series or DataFrame) as float64, or ValueError naming name."""
    try:
        return obj.astype("float64")
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: values must be numbers ({exc})") from None


def _prices(prices):
    if isinstance(prices, pd.DataFrame):
        if prices.shape[1] == 0:
            raise ValueError("prices: the DataFrame has no columns")
        if not prices.columns.is_unique:
            raise ValueError("prices: column names must be unique")
        px = prices
    elif isinstance(prices, pd.Series):
        px = prices
    elif isinstance(prices, (list, tuple, np.ndarray)):
        try:
            arr = np.asarray(prices, dtype="float64")
        except (TypeError, ValueError) as exc:
            raise ValueError(f"prices: values must be numbers ({exc})") from None
        if arr.ndim == 1:
            px = pd.Series(arr)
        elif arr.ndim == 2:
            px = pd.DataFrame(arr)
        else:
            raise ValueError(f"prices: expected 1 or 2 dimensions, got shape {arr.shape}")
    else:
        raise ValueError("prices must be a pandas Series or DataFrame, or a list of numbers, "
                         f"got {type(prices).__name__}")
    if len(px) == 0:
        raise ValueError("prices is empty")
    px = _as_float("prices", px)
    if not px.index.is_unique:
        raise ValueError("prices: the index has duplicate labels")
    if not px.index.is_monotonic_increasing:
        raise ValueError("prices: the index must be sorted in increasing order (oldest first)")
    values = px.to_numpy()
    if np.isinf(values).any():
        raise ValueError(f"prices: infinite value at {_first_label(px, np.isinf(values))!r}")
    bad = values <= 0  # NaN compares False
    if bad.any():
        raise ValueError(f"prices must be > 0: got {values[bad][0]!r} at "
                         f"{_first_label(px, bad)!r}")
    return px


def _first_label(frame, mask):
    mask = mask.reshape(len(frame), -1).any(axis=1)
    return frame.index[int(mask.argmax())]


def _positions_like(positions, px):
    """positions as float64 with px's index (and columns), NaN kept."""
    n = len(px)
    multi = px.ndim == 2
    if isinstance(positions, (bool, int, float, np.number, np.bool_)):
        value = float(positions)
        pos = (pd.DataFrame(value, index=px.index, columns=px.columns) if multi
               else pd.Series(value, index=px.index))
    elif isinstance(positions, (pd.Series, pd.DataFrame)):
        pos = positions
        if multi and isinstance(pos, pd.Series):
            if px.shape[1] != 1:
                raise ValueError(f"positions: prices has {px.shape[1]} columns, so positions "
                                 "must be a DataFrame with the same columns")
            pos = pos.to_frame(px.columns[0])
        elif not multi and isinstance(pos, pd.DataFrame):
            if pos.shape[1] != 1:
                raise ValueError(f"positions: prices is one series, but positions has "
                                 f"{pos.shape[1]} columns")
            pos = pos.iloc[:, 0]
        if len(pos) != n:
            raise ValueError(f"positions has {len(pos)} rows but prices has {n}")
        if not pos.index.equals(px.index):
            raise ValueError("positions: the index differs from prices' index (align it first, "
                             "e.g. positions.reindex(prices.index).ffill())")
        if multi:
            missing = [c for c in px.columns if c not in pos.columns]
            extra = [c for c in pos.columns if c not in px.columns]
            if missing or extra or not pos.columns.is_unique:
                raise ValueError(f"positions: the columns must be prices' columns; missing "
                                 f"{missing}, unknown {extra}")
            pos = pos[list(px.columns)]
    elif isinstance(positions, (list, tuple, np.ndarray)):
        try:
            arr = np.asarray(positions, dtype="float64")
        except (TypeError, ValueError) as exc:
            raise ValueError(f"positions: values must be numbers ({exc})") from None
        if len(arr) != n:
            raise ValueError(f"positions has {len(arr)} rows but prices has {n}")
        want = 2 if multi else 1
        if arr.ndim != want or (multi and arr.shape[1] != px.shape[1]):
            shape = f"({n}, {px.shape[1]})" if multi else f"({n},)"
            raise ValueError(f"positions: expected shape {shape} like prices, got {arr.shape}")
        pos = (pd.DataFrame(arr, index=px.index, columns=px.columns) if multi
               else pd.Series(arr, index=px.index))
    else:
        raise ValueError("positions must be a pandas Series or DataFrame, a list of numbers "
                         f"or a number, got {type(positions).__name__}")
    pos = _as_float("positions", pos)
    values = pos.to_numpy()
    if np.isinf(values).any():
        raise ValueError(f"positions: infinite value at {_first_label(pos, np.isinf(values))!r}")
    if not multi:
        pos.name = "positions"
    return pos


def position_turnover(positions):
    """The per-row turnover of target positions, as a float64 numpy array:
    sum over symbols of |w[t] - w[t-1]|, w[-1] = 0. positions: a Series,
    DataFrame, list, or 1-D/2-D array; NaN forward-filled, leading NaN 0.
    Used by ``stratq.metrics``."""
    if isinstance(positions, (pd.Series, pd.DataFrame)):
        pos = _as_float("positions", positions)
    elif isinstance(positions, (list, tuple, np.ndarray)):
        try:
            arr = np.asarray(positions, dtype="float64")
        except (TypeError, ValueError) as exc:
            raise ValueError(f"positions: values must be numbers ({exc})") from None
        if arr.ndim not in (1, 2):
            raise ValueError(f"positions: expected 1 or 2 dimensions, got shape {arr.shape}")
        pos = pd.Series(arr) if arr.ndim == 1 else pd.DataFrame(arr)
    else:
        raise ValueError("positions must be a pandas Series or DataFrame or a list of numbers, "
                         f"got {type(positions).__name__}")
    if len(pos) == 0:
        raise ValueError("positions is empty")
    w = pos.ffill().fillna(0.0).to_numpy(dtype="float64").reshape(len(pos), -1)
    if np.isinf(w).any():
        raise ValueError("positions: infinite value")
    before = np.vstack([np.zeros((1, w.shape[1])), w[:-1]])
    return np.abs(w - before).sum(axis=1)


def compute_metrics(returns, periods_per_year, positions, risk_free):
    """stratq.metrics' body; see its docstring for the formulas."""
    if isinstance(returns, Backtest):
        if positions is None:
            positions = returns.positions
        returns = returns.returns
    ppy = _number("periods_per_year", periods_per_year)
    if ppy <= 0:
        raise ValueError(f"periods_per_year must be > 0, got {periods_per_year!r}")
    rf = _number("risk_free", risk_free)

    r = _returns_array(returns)
    n = len(r)

    wealth = np.cumprod(1.0 + r)
    total = float(wealth[-1]) - 1.0
    if 1.0 + total <= 0.0:
        cagr = -1.0
    else:
        try:
            cagr = math.pow(1.0 + total, ppy / n) - 1.0
        except OverflowError:
            cagr = None

    excess = r - rf / ppy
    if n < 2:
        volatility = None
        sharpe = None
    elif r.max() == r.min():
        volatility = 0.0
        sharpe = None
    else:
        std = float(np.std(r, ddof=1))
        volatility = std * math.sqrt(ppy)
        sharpe = float(np.mean(excess)) / float(np.std(excess, ddof=1)) * math.sqrt(ppy)

    downside = math.sqrt(float(np.mean(np.minimum(excess, 0.0) ** 2)))
    sortino = (float(np.mean(excess)) / downside * math.sqrt(ppy)) if downside > 0 else None

    peaks = np.maximum(np.maximum.accumulate(wealth), 1.0)  # max(1, max_{k<=t} W[k])
    drawdown = wealth / peaks - 1.0
    under = drawdown < -DRAWDOWN_EPSILON
    max_dd = float(drawdown.min()) if under.any() else 0.0
    max_dd_duration = _longest_run(under)

    nonzero = int(np.count_nonzero(r))
    win_rate = int(np.count_nonzero(r > 0)) / nonzero if nonzero else None

    turnover = None
    if positions is not None:
        turnover = float(np.mean(position_turnover(positions)))

    return {
        "total_return": _clean(total),
        "cagr": _clean(cagr),
        "annual_volatility": _clean(volatility),
        "sharpe": _clean(sharpe),
        "sortino": _clean(sortino),
        "max_drawdown": _clean(max_dd),
        "max_drawdown_duration": int(max_dd_duration),
        "win_rate": _clean(win_rate),
        "turnover": _clean(turnover),
        "n_periods": int(n),
    }


def _clean(x):
    if x is None:
        return None
    x = float(x)
    if not math.isfinite(x):
        return None
    return 0.0 if x == 0.0 else x  # no -0.0


def _number(name, value):
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(x):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return x


def _returns_array(returns):
    if isinstance(returns, pd.DataFrame):
        if returns.shape[1] != 1:
            raise ValueError(f"returns: expected one series, got a DataFrame with "
                             f"{returns.shape[1]} columns")
        returns = returns.iloc[:, 0]
    if isinstance(returns, pd.Series):
        labels = returns.index
        try:
            r = returns.to_numpy(dtype="float64")
        except (TypeError, ValueError) as exc:
            raise ValueError(f"returns: values must be numbers ({exc})") from None
    elif isinstance(returns, (list, tuple, np.ndarray)):
        labels = None
        try:
            r = np.asarray(returns, dtype="float64")
        except (TypeError, ValueError) as exc:
            raise ValueError(f"returns: values must be numbers ({exc})") from None
        if r.ndim != 1:
            raise ValueError(f"returns: expected one dimension, got shape {r.shape}")
    else:
        raise ValueError("returns must be a pandas Series, a list of numbers or a Backtest, "
                         f"got {type(returns).__name__}")
    missing = np.isnan(r)
    if missing.all():
        raise ValueError("returns is empty" + (" (every value is NaN)" if len(r) else ""))
    first = int(np.argmax(~missing))
    r = r[first:]
    for what, mask in (("NaN", np.isnan(r)), ("infinite value", np.isinf(r))):
        if mask.any():
            i = first + int(mask.argmax())
            where = f"at {labels[i]!r}" if labels is not None else f"at position {i}"
            raise ValueError(f"returns: {what} {where} (only leading NaN are dropped)")
    return r


def _longest_run(mask):
    if not mask.any():
        return 0
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    return int((ends - starts).max())
