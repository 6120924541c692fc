"""stratq.backtest and stratq.Backtest: a vectorised backtest of target positions.

Only the interface lives here; the computation is in ``_engine``, imported
(with numpy and pandas) on the first call, because ``import stratq`` runs in
every job and must stay cheap.
"""


class Backtest:
    """The outcome of ``stratq.backtest``. Every series shares the index of
    the prices the backtest kept (leading rows without a price dropped).

    Attributes:
        equity: Series, the account value at each close, starting at
            ``initial_capital`` on the first row (nothing has been held yet).
        returns: Series, the strategy's return over each period net of
            costs, indexed by the period's closing row: one fewer row than
            ``equity`` (it starts at the second row), and
            ``equity == initial_capital * (1 + returns).cumprod()`` from the
            second row on.
        positions: Series (one symbol) or DataFrame (one column per symbol),
            the cleaned target positions: floats, NaN forward-filled, leading
            NaN as 0.
        trades: list of dicts, one per position change of one symbol, in
            date then column order: ``{"date", "symbol", "from", "to",
            "price"}``. ``date`` is the row's label as JSON (an ISO date for a
            daily DatetimeIndex, an ISO datetime for an intraday one, an int
            for a positional index), ``symbol`` the column name (the Series'
            name, or None, for one symbol), ``from``/``to`` the positions
            before and after, ``price`` the close the change happened at.
            Every value is a plain JSON value.
        turnover: Series, sum over symbols of |position[t] - position[t-1]|
            on each row (the first row counts the entry from flat).
        prices: Series or DataFrame, the prices used (leading NaN rows
            dropped, later NaN forward-filled).
        cost_bps: the cost per unit of turnover, in basis points.
        initial_capital: the starting equity.
    """

    __slots__ = ("equity", "returns", "positions", "trades", "turnover", "prices",
                 "cost_bps", "initial_capital")

    def __init__(self, equity, returns, positions, trades, turnover, prices, cost_bps,
                 initial_capital):
        self.equity = equity
        self.returns = returns
        self.positions = positions
        self.trades = trades
        self.turnover = turnover
        self.prices = prices
        self.cost_bps = cost_bps
        self.initial_capital = initial_capital

    def __repr__(self):
        n = len(self.equity)
        final = float(self.equity.iloc[-1]) if n else float("nan")
        return (f"Backtest(rows={n}, trades={len(self.trades)}, "
                f"final_equity={final:.2f}, cost_bps={self.cost_bps})")


def backtest(prices, positions, cost_bps=0.0, initial_capital=10_000.0):
    """Backtests target positions against prices, bar by bar, without look-ahead.

    Args:
        prices: close prices, oldest first. A pandas Series (one symbol), a
            DataFrame (one column per symbol), a list or 1-D array (one
            symbol, positional index) or a 2-D array/list of rows (columns
            0, 1, ...). The index must be sorted increasing and unique.
        positions: the target position decided at each row's close, as a
            fraction of equity (1 = fully long, -1 = fully short, 0.5 = half,
            2 = twice levered; for several symbols, one weight per symbol,
            not required to sum to 1). Same shape as prices: a Series, list
            or 1-D array for one symbol; a DataFrame with the same columns
            (any order), or a 2-D array, for several. A pandas object must
            have exactly prices' index; a list or array must have its
            length. A single number means that position on every row (1.0:
            buy and hold). Booleans count as 0/1.
        cost_bps: trading cost in basis points of the traded fraction of
            equity (10 = 0.1%), charged on turnover. Must be >= 0.
        initial_capital: the starting equity, > 0.

    Convention (no look-ahead): the position decided at row t's close is
    held over the next period, so for t >= 1

        returns[t] = sum_s positions[t-1, s] * asset_return[t, s]
                     - cost_bps / 10_000 * turnover[t-1]
        asset_return[t, s] = prices[t, s] / prices[t-1, s] - 1
        turnover[t] = sum_s |positions[t, s] - positions[t-1, s]|,
                      positions[-1, s] = 0 (the account starts flat, in cash)
        equity[0] = initial_capital, equity[t] = equity[t-1] * (1 + returns[t])

    The cost of rebalancing at row t's close is taken from the following
    period's return, with the position it paid for; a change on the last
    row is listed in ``trades`` and ``turnover`` but its cost is never
    charged (nothing is held after it). Positions are fractions of the
    current equity, so they are in effect re-established at every close;
    that drift rebalancing is not charged, only changes of the target are.
    Equity can reach zero or go negative with leverage; it is not floored.

    Missing values:
        prices: leading rows with a missing price (for a DataFrame: until
            every symbol has one) are dropped, together with those rows of
            positions; later missing prices are forward-filled (a return of
            0 on the missing row, the whole move when a price is back).
            Zero, negative or infinite prices raise ValueError.
        positions: NaN is forward-filled (the last decision stands), and
            NaN before the first decision means flat (0). Forward-filling
            happens before leading price rows are dropped, so a position set
            on such a row carries into the first kept row. Infinite
            positions raise ValueError.

    Returns:
        a ``Backtest`` (equity, returns, positions, trades, turnover,
        prices, cost_bps, initial_capital).

    Raises:
        ValueError naming the argument: wrong type or shape, non-numeric
        values, length or index mismatch, fewer than 2 usable rows, prices
        <= 0, infinite values, a negative cost_bps, initial_capital <= 0.
    """
    from ._engine import run_backtest

    return run_backtest(prices, positions, cost_bps, initial_capital)
