"""stratq.Result: a strategy's backtest in a compact, documented JSON shape.

The shape is described in ``Result.to_dict`` and in docs/result-shape.md.
The conversion code (``_convert``) is imported on first use: ``import
stratq`` runs in every job and must stay cheap.
"""

import sys

RESULT_VERSION = 1


class Result:
    """What a strategy returns to have its backtest stored in a shape a
    dashboard can plot::

        import stratq

        def run(ctx):
            ...
            bt = stratq.backtest(close, position, cost_bps=5)
            return stratq.Result.from_backtest(bt, fast=20, slow=50)

    Args:
        metrics: a dict of figures (typically ``stratq.metrics(...)``), or
            None.
        equity: the equity curve: a pandas Series (its index gives the
            times) or a list/1-D array of numbers (times 0, 1, ...), or None.
        trades: a list of dicts (typically ``Backtest.trades``: date,
            symbol, from, to, price), or None.
        **extra: anything else to keep (parameters, notes, other series),
            any JSON-able values; a pandas Series becomes
            ``{"t", "v", "n"}`` like the equity curve (not downsampled).

    The values are converted when ``to_dict`` is called, which raises
    TypeError naming the first value that cannot be made JSON. A strategy
    returns the Result itself (the harness stores ``to_dict()``), or
    ``to_dict()``'s value.
    """

    MAX_POINTS = 5000
    MAX_TRADES = 5000

    def __init__(self, metrics=None, equity=None, trades=None, **extra):
        if metrics is not None and not isinstance(metrics, dict):
            raise TypeError(f"metrics must be a dict or None, got {type(metrics).__name__}")
        pd = sys.modules.get("pandas")  # a pandas object means pandas is loaded
        if equity is not None and (isinstance(equity, (str, bytes, dict))
                                   or (pd is not None and isinstance(equity, pd.DataFrame))
                                   or not hasattr(equity, "__len__")):
            raise TypeError("equity must be a pandas Series or a list of numbers, "
                            f"got {type(equity).__name__}")
        if trades is not None:
            if isinstance(trades, (str, bytes, dict)) or not hasattr(trades, "__iter__"):
                raise TypeError(f"trades must be a list of dicts, got {type(trades).__name__}")
            trades = list(trades)
            for i, trade in enumerate(trades):
                if not isinstance(trade, dict):
                    raise TypeError(f"trades[{i}] must be a dict, got {type(trade).__name__}")
        self.metrics = metrics
        self.equity = equity
        self.trades = trades
        self.extra = extra

    @classmethod
    def from_backtest(cls, bt, **extra):
        """A Result holding ``stratq.metrics(bt)`` (with its defaults: 252
        periods a year, no risk-free rate), ``bt.equity`` and ``bt.trades``,
        plus ``extra``. For other metric settings build it yourself:
        ``Result(metrics=stratq.metrics(bt, periods_per_year=52),
        equity=bt.equity, trades=bt.trades)``."""
        from ._backtest import Backtest
        from ._metrics import metrics

        if not isinstance(bt, Backtest):
            raise TypeError(f"from_backtest needs a stratq.Backtest, got {type(bt).__name__}")
        return cls(metrics=metrics(bt), equity=bt.equity, trades=bt.trades, **extra)

    def to_dict(self, max_points=None, max_trades=None):
        """The result as plain JSON values (``json.dumps(..., allow_nan=False)``
        accepts it)::

            {
              "stratq_result": 1,            # version of this shape
              "metrics": {"sharpe": 1.23, ...} | null,
              "equity": {"t": [...], "v": [...], "n": 1260} | null,
              "trades": [{"date": "2024-01-02", "symbol": "AAPL",
                          "from": 0.0, "to": 1.0, "price": 187.15}, ...] | null,
              "n_trades": 42 | null,
              "extra": {...}
            }

        - metrics: the dict given, floats rounded to 6 significant digits,
          NaN/inf as null.
        - equity: parallel arrays. ``t``: ISO dates ("2024-01-02") for a
          daily DatetimeIndex, ISO datetimes ("2024-01-02T15:30:00",
          offset appended when tz-aware) for an intraday one, ints for a
          positional index or a list (0, 1, ...), the labels otherwise
          (strings as they are). ``v``: floats rounded to 6 significant
          digits (null where NaN). ``n``: the number of points before
          downsampling; a curve longer than ``max_points`` (default
          ``Result.MAX_POINTS`` = 5000) keeps that many points evenly
          spaced over it, first and last included, so ``len(t) < n`` says
          it was downsampled (a peak or trough between two kept points is
          not shown; the metrics are computed on the full curve).
        - trades: the dicts given, numbers rounded to 6 significant digits
          and dates as in ``t``; only the last ``max_trades`` (default
          ``Result.MAX_TRADES`` = 5000) are kept. ``n_trades`` is the count
          before that cut (null when there are no trades given).
        - extra: the keyword arguments given, converted to JSON (numpy
          numbers to Python ones, dates to ISO strings, tuples to lists,
          NaN/inf to null, a Series to {"t", "v", "n"}), not rounded.

        Absent parts are null (extra: {}), so the keys are always present.
        """
        from ._convert import SIGNIFICANT_DIGITS, jsonable, series_shape

        max_points = self.MAX_POINTS if max_points is None else int(max_points)
        max_trades = self.MAX_TRADES if max_trades is None else int(max_trades)
        if max_points < 2:
            raise ValueError(f"max_points must be at least 2, got {max_points}")
        if max_trades < 0:
            raise ValueError(f"max_trades must be >= 0, got {max_trades}")
        metrics = None
        if self.metrics is not None:
            metrics = jsonable(self.metrics, SIGNIFICANT_DIGITS, "metrics")
        equity = None
        if self.equity is not None:
            try:
                equity = series_shape(self.equity, SIGNIFICANT_DIGITS, max_points)
            except TypeError as exc:
                raise TypeError(f"equity: {exc}") from None
        trades = n_trades = None
        if self.trades is not None:
            n_trades = len(self.trades)
            kept = self.trades[max(0, n_trades - max_trades):] if max_trades else []
            first = n_trades - len(kept)
            trades = [jsonable(t, SIGNIFICANT_DIGITS, f"trades[{first + i}]")
                      for i, t in enumerate(kept)]
        return {
            "stratq_result": RESULT_VERSION,
            "metrics": metrics,
            "equity": equity,
            "trades": trades,
            "n_trades": n_trades,
            "extra": jsonable(self.extra, None, "extra"),
        }

    def __repr__(self):
        parts = []
        if self.metrics is not None:
            parts.append(f"metrics={len(self.metrics)} keys")
        if self.equity is not None:
            parts.append(f"equity={len(self.equity)} points")
        if self.trades is not None:
            parts.append(f"trades={len(self.trades)}")
        if self.extra:
            parts.append("extra=" + ",".join(sorted(self.extra)))
        return f"Result({', '.join(parts)})"
