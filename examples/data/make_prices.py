#!/usr/bin/python3
"""Generate the deterministic demo price series used by the examples.

Daily close prices follow geometric Brownian motion,

    S[t+1] = S[t] * exp((mu - sigma**2 / 2) * dt + sigma * sqrt(dt) * Z[t]),

with Z drawn from numpy's default_rng(seed), so the same seed always gives the
same file. Dates are consecutive business days (Mon-Fri; no holiday
calendar). The output is the shape the example strategies expect in
``ctx.data``:

    {"symbol": "DEMO", "dates": ["2022-01-03", ...], "close": [100.0, ...]}

Usage: make_prices.py [OUTPUT] [--seed N] [--days N]
(default OUTPUT: prices.json next to this script).
"""

import argparse
import datetime as dt
import json
import math
from pathlib import Path

import numpy as np

DEFAULT_SEED = 20240101
DEFAULT_DAYS = 500
START_DATE = "2022-01-03"  # a Monday
START_PRICE = 100.0
MU = 0.08  # annual drift
SIGMA = 0.25  # annual volatility
TRADING_DAYS = 252


def business_days(start, count):
    """Return ``count`` consecutive Mon-Fri dates starting at ``start``."""
    days = np.busday_offset(np.datetime64(start), np.arange(count), roll="forward")
    return [str(d) for d in days]


def gbm_closes(seed, count):
    """Return ``count`` close prices, the first being START_PRICE."""
    rng = np.random.default_rng(seed)
    step = 1.0 / TRADING_DAYS
    shocks = rng.standard_normal(count - 1)
    log_returns = (MU - 0.5 * SIGMA**2) * step + SIGMA * math.sqrt(step) * shocks
    path = START_PRICE * np.exp(np.concatenate(([0.0], np.cumsum(log_returns))))
    return [round(float(p), 4) for p in path]


def make_prices(seed=DEFAULT_SEED, days=DEFAULT_DAYS):
    if days < 2:
        raise ValueError("days must be at least 2")
    return {
        "symbol": "DEMO",
        "dates": business_days(START_DATE, days),
        "close": gbm_closes(seed, days),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", nargs="?", default=str(Path(__file__).with_name("prices.json")))
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--days", type=int, default=DEFAULT_DAYS)
    args = parser.parse_args()
    prices = make_prices(args.seed, args.days)
    # Sanity: the dates really are increasing weekdays.
    parsed = [dt.date.fromisoformat(d) for d in prices["dates"]]
    assert all(a < b for a, b in zip(parsed, parsed[1:]))
    assert all(d.weekday() < 5 for d in parsed)
    with open(args.output, "w", encoding="utf-8") as f:
        json.dump(prices, f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
