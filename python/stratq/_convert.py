"""Turning pandas/numpy values into plain JSON values (shared by the
backtest, metrics and Result code).

Nothing here imports numpy or pandas: a value can only be a numpy or pandas
object if its module is already loaded, so those modules are looked up in
``sys.modules`` instead. ``import stratq`` stays cheap for jobs that never
use them.
"""

import datetime
import math
import sys

SIGNIFICANT_DIGITS = 6


def round_sig(x, digits=SIGNIFICANT_DIGITS):
    """x rounded to ``digits`` significant digits, as a plain float; None for
    NaN and +-inf."""
    x = float(x)
    if not math.isfinite(x):
        return None
    if x == 0.0:
        return 0.0  # not -0.0
    return float(f"{x:.{digits}g}")


def plain_float(x):
    """x as a plain float; None for NaN and +-inf."""
    x = float(x)
    return x if math.isfinite(x) else None


def _numpy():
    return sys.modules.get("numpy")


def _pandas():
    return sys.modules.get("pandas")


def is_series(x):
    pd = _pandas()
    return pd is not None and isinstance(x, pd.Series)


def is_frame(x):
    pd = _pandas()
    return pd is not None and isinstance(x, pd.DataFrame)


def scalar(x, digits=None):
    """A plain JSON scalar for one value: numpy scalars become Python ones,
    dates and datetimes ISO strings (a tz-naive midnight datetime as a bare
    date, "2024-01-02"), NaN/inf/NaT None. Floats are rounded to
    ``digits`` significant digits when ``digits`` is given. Raises TypeError
    for anything that is not a scalar."""
    if x is None or isinstance(x, (bool, str)):
        return x
    np = _numpy()
    if np is not None and isinstance(x, np.generic):
        if isinstance(x, np.datetime64):
            pd = _pandas()
            if pd is None:  # pragma: no cover - numpy datetimes come with pandas
                return str(x)
            x = pd.Timestamp(x)
        elif isinstance(x, np.timedelta64):
            return None if np.isnat(x) else str(x)
        else:
            x = x.item()
            if isinstance(x, bytes):
                raise TypeError("bytes are not JSON-serializable")
            return scalar(x, digits)
    pd = _pandas()
    if pd is not None and x is pd.NaT:
        return None
    if isinstance(x, int):
        return int(x)
    if isinstance(x, float):
        return round_sig(x, digits) if digits else plain_float(x)
    if isinstance(x, datetime.datetime):
        if (x.tzinfo is None and x.hour == 0 and x.minute == 0 and x.second == 0
                and x.microsecond == 0 and not getattr(x, "nanosecond", 0)):
            return x.date().isoformat()
        return x.isoformat()
    if isinstance(x, datetime.date):
        return x.isoformat()
    if pd is not None and isinstance(x, pd.Period):
        return str(x)
    if pd is not None and x is pd.NA:
        return None
    raise TypeError(f"{type(x).__name__} is not JSON-serializable")


def index_labels(index, positions=None):
    """JSON labels for a pandas index (or for the rows ``positions`` of it).

    A DatetimeIndex whose stamps are all tz-naive midnights gives dates
    ("2024-01-31"); any other DatetimeIndex gives full ISO 8601 stamps
    ("2024-01-31T15:30:00", "+00:00" appended when tz-aware). The decision is
    made on the whole index so that every label of one index has the same
    form. Integers stay ints; other labels go through ``scalar`` (strings
    stay strings, anything unknown becomes ``str(label)``).
    """
    pd = _pandas()
    subset = index if positions is None else index[positions]
    if pd is not None and isinstance(index, pd.DatetimeIndex):
        daily = index.tz is None and bool((index == index.normalize()).all())
        if daily:
            return [None if s is None or s != s else s
                    for s in subset.strftime("%Y-%m-%d")]
        return [None if ts is pd.NaT else ts.isoformat() for ts in subset]
    out = []
    for label in subset:
        try:
            out.append(scalar(label))
        except TypeError:
            out.append(str(label))
    return out


def jsonable(value, digits=None, path="value"):
    """A JSON-serializable copy of value: dicts (keys made strings), lists,
    tuples and sets (as lists), numpy arrays (as lists), pandas Series (as
    {"t": [...], "v": [...], "n": len}) and scalars as in ``scalar``. Floats are
    rounded to ``digits`` significant digits when it is given. Raises
    TypeError naming where in value the offending object is."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            key = k if isinstance(k, str) else str(scalar(k) if _is_scalar(k) else k)
            out[key] = jsonable(v, digits, f"{path}[{k!r}]")
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v, digits, f"{path}[{i}]") for i, v in enumerate(value)]
    np = _numpy()
    if np is not None and isinstance(value, np.ndarray):
        return [jsonable(v, digits, f"{path}[{i}]") for i, v in enumerate(value.tolist())]
    if is_series(value):
        return series_shape(value, digits=digits, max_points=None)
    if is_frame(value):
        raise TypeError(f"{path}: a DataFrame is not JSON-serializable; "
                        "pass its columns as Series or use .to_dict('list')")
    try:
        return scalar(value, digits)
    except TypeError as exc:
        raise TypeError(f"{path}: {exc}") from None


def _is_scalar(x):
    try:
        scalar(x)
        return True
    except TypeError:
        return False


def sample_positions(n, max_points):
    """Up to max_points row numbers spread evenly over range(n), always
    including the first (0) and the last (n - 1); all of them if n is small
    enough."""
    if max_points is None or n <= max_points:
        return list(range(n))
    if max_points < 2:
        raise ValueError(f"max_points must be at least 2, got {max_points!r}")
    step = (n - 1) / (max_points - 1)
    return sorted({int(round(i * step)) for i in range(max_points)})


def series_shape(values, digits=SIGNIFICANT_DIGITS, max_points=None):
    """The compact shape of a series: {"t": [labels], "v": [values], "n": N}.

    ``values`` is a pandas Series (t from its index, see ``index_labels``) or
    a sequence of numbers (t = 0, 1, ...). N is the length before
    downsampling to at most ``max_points`` points (see ``sample_positions``).
    Values are rounded to ``digits`` significant digits; NaN/inf become None.
    """
    if is_series(values):
        n = len(values)
        rows = sample_positions(n, max_points)
        t = index_labels(values.index, rows if len(rows) < n else None)
        raw = values.to_numpy()
        v = [_number(raw[i], digits) for i in rows]
        return {"t": t, "v": v, "n": n}
    if isinstance(values, (str, bytes, dict)) or not hasattr(values, "__len__"):
        raise TypeError(f"expected a pandas Series or a list of numbers, "
                        f"got {type(values).__name__}")
    np = _numpy()
    if np is not None and isinstance(values, np.ndarray):
        if values.ndim != 1:
            raise TypeError(f"expected a 1-D array, got one of shape {values.shape}")
        values = values.tolist()
    n = len(values)
    rows = sample_positions(n, max_points)
    return {"t": list(rows), "v": [_number(values[i], digits) for i in rows], "n": n}


def _number(x, digits):
    v = scalar(x, digits)
    if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
        raise TypeError(f"expected a number, got {x!r}")
    return float(v) if isinstance(v, int) else v
