"""stratq.metrics: performance figures of a return series, as plain JSON values.

Only the interface lives here; the computation is in ``_engine``, imported
(with numpy and pandas) on the first call, because ``import stratq`` runs in
every job and must stay cheap.
"""


def metrics(returns, periods_per_year=252, positions=None, risk_free=0.0):
    """Performance metrics of periodic strategy returns.

    Args:
        returns: simple returns, one per period, oldest first (0.01 = +1%):
            a pandas Series, a one-column DataFrame, a list or a 1-D array;
            or a ``Backtest``, whose ``returns`` (and ``positions``, unless
            ``positions`` is given) are used. Leading NaN are dropped (as
            ``pct_change`` leaves one); any later NaN, and +-inf, raise
            ValueError.
        periods_per_year: periods in a year, to annualise (252 trading
            days, 52 weeks, 12 months, 365 * 24 hours, ...). > 0.
        positions: the target positions the returns came from (as for
            ``stratq.backtest``), only used for ``turnover``.
        risk_free: annual risk-free rate (0.03 = 3%), taken off each period
            as ``risk_free / periods_per_year`` for sharpe and sortino.

    Returns a dict of plain JSON values (float, int or None; never numpy
    types, NaN or inf). With r the n returns, ppy = periods_per_year,
    e = r - risk_free / ppy (excess returns), W[t] = prod_{k<=t} (1 + r[k])
    (the wealth curve, W[-1] = 1 before the first period):

        n_periods          n
        total_return       W[n-1] - 1
        cagr               (1 + total_return) ** (ppy / n) - 1;
                           -1.0 if 1 + total_return <= 0 (everything lost)
        annual_volatility  std(r, ddof=1) * sqrt(ppy); exactly 0.0 when all
                           returns are equal; None when n < 2
        sharpe             mean(e) / std(e, ddof=1) * sqrt(ppy); None when the
                           volatility is 0 or None (undefined, not 0: a
                           constant positive return is not a Sharpe of 0)
        sortino            mean(e) * ppy / downside, with the annualised
                           downside deviation
                           downside = sqrt(mean(min(e, 0) ** 2)) * sqrt(ppy)
                           (the mean is over all n periods, target = the
                           risk-free rate); None when no period is below it
        max_drawdown       min over t of W[t] / max(1, max_{k<=t} W[k]) - 1,
                           a fraction <= 0 (0.0 when never below a peak; the
                           starting value 1 counts as a peak). Can pass -1
                           only if the equity goes negative.
        max_drawdown_duration
                           the longest run of consecutive periods whose W[t]
                           is below the highest earlier value (the starting
                           1 included), in periods; a run still open at the
                           end counts. 0 if never under water.
        win_rate           (number of r > 0) / (number of r != 0): periods
                           with a zero return (flat, or no move) count
                           neither way; None if every return is 0
        turnover           mean over the rows of positions of
                           sum_s |positions[t, s] - positions[t-1, s]|, with
                           positions[-1] = 0 (so the first entry from flat
                           counts): the average fraction of equity traded
                           per period, NOT annualised (multiply by ppy for a
                           yearly figure); None when no positions are given

    Drawdowns shallower than 1e-12 count as 0 (floating-point noise). Any
    value that comes out NaN or infinite (an overflowing cagr, say) is None.

    Raises:
        ValueError: returns is empty (after dropping leading NaN), holds a
        later NaN or an inf, is not numeric or not one-dimensional;
        periods_per_year is not a finite number > 0; risk_free is not finite.
    """
    from ._engine import compute_metrics

    return compute_metrics(returns, periods_per_year, positions, risk_free)
