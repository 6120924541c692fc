#!/usr/bin/python3
"""Generate the deterministic sample prices the examples use.

Every series is geometric Brownian motion on business days (Mon-Fri from
2022-01-03, no holiday calendar), with dt = 1/252 of a year:

    S[t+1] = S[t] * exp((mu - sigma**2 / 2) * dt + sigma * sqrt(dt) * Z[t])

The shocks Z come from numpy's default_rng (PCG64) with a fixed seed, so the
same seed always gives the same files, byte for byte. Prices are rounded to
4 decimals.

Files written (into the directory given, by default the one of this script):

prices.json, prices.csv
    One symbol, DEMO: 500 closes from 100.0 with mu = 8% and sigma = 25% a
    year, seed 20240101. The two files hold the same numbers:
    prices.json is {"symbol": "DEMO", "dates": [...], "close": [...]} (a
    JSON value for ``stratq submit --data``, which becomes ctx.data as is),
    prices.csv has the columns ``date,close`` (``--data`` sends a .csv file
    as data_csv, and ctx.data is then a pandas DataFrame).

universe.csv
    Eight symbols, AAA to HHH, in wide format: a ``date`` column and one
    column of closes per symbol, on the same 500 dates, each starting at
    100.0. Each symbol has its own drift and volatility (UNIVERSE below:
    mu from -6% to +18%, sigma from 18% to 40% a year) and its shocks share
    one market factor:

        Z[t, s] = RHO_SQRT * M[t] + sqrt(1 - RHO) * E[t, s]

    with M and E independent standard normals (seed 20240102), so any two
    symbols' daily log returns have correlation RHO = 0.3.

Usage: make_prices.py [OUTPUT_DIR] [--seed N] [--days N]
(--seed is the seed of prices.*; universe.csv uses seed + 1).
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
TRADING_DAYS = 252
DECIMALS = 4

# The single series (prices.json, prices.csv).
SYMBOL = "DEMO"
MU = 0.08  # annual drift
SIGMA = 0.25  # annual volatility

# The universe (universe.csv): symbol -> (annual drift, annual volatility).
UNIVERSE = {
    "AAA": (0.18, 0.30),
    "BBB": (0.12, 0.22),
    "CCC": (0.08, 0.18),
    "DDD": (0.04, 0.25),
    "EEE": (0.00, 0.20),
    "FFF": (-0.03, 0.35),
    "GGG": (0.10, 0.40),
    "HHH": (-0.06, 0.28),
}
RHO = 0.3  # correlation of any two symbols' shocks (one common factor)


def business_days(start, count):
    """Return ``count`` consecutive Mon-Fri dates from ``start``, as ISO strings."""
    days = np.busday_offset(np.datetime64(start), np.arange(count), roll="forward")
    return [str(d) for d in days]


def gbm_path(shocks, mu, sigma):
    """Closes from START_PRICE driven by the standard-normal ``shocks`` (one
    fewer than the closes), rounded to DECIMALS."""
    step = 1.0 / TRADING_DAYS
    log_returns = (mu - 0.5 * sigma**2) * step + sigma * math.sqrt(step) * shocks
    path = START_PRICE * np.exp(np.concatenate(([0.0], np.cumsum(log_returns))))
    return [round(float(p), DECIMALS) for p in path]


def make_prices(seed=DEFAULT_SEED, days=DEFAULT_DAYS):
    """The single series: {"symbol", "dates", "close"}."""
    if days < 2:
        raise ValueError("days must be at least 2")
    rng = np.random.default_rng(seed)
    return {
        "symbol": SYMBOL,
        "dates": business_days(START_DATE, days),
        "close": gbm_path(rng.standard_normal(days - 1), MU, SIGMA),
    }


def make_universe(seed=DEFAULT_SEED + 1, days=DEFAULT_DAYS):
    """The universe: (dates, {symbol: closes})."""
    if days < 2:
        raise ValueError("days must be at least 2")
    rng = np.random.default_rng(seed)
    market = rng.standard_normal(days - 1)
    own = rng.standard_normal((len(UNIVERSE), days - 1))
    closes = {}
    for i, (symbol, (mu, sigma)) in enumerate(UNIVERSE.items()):
        shocks = math.sqrt(RHO) * market + math.sqrt(1.0 - RHO) * own[i]
        closes[symbol] = gbm_path(shocks, mu, sigma)
    return business_days(START_DATE, days), closes


def fmt(price):
    return f"{price:.{DECIMALS}f}"


def write_files(out_dir, seed=DEFAULT_SEED, days=DEFAULT_DAYS):
    out_dir = Path(out_dir)
    prices = make_prices(seed, days)
    # Sanity: the dates really are increasing weekdays.
    parsed = [dt.date.fromisoformat(d) for d in prices["dates"]]
    assert all(a < b for a, b in zip(parsed, parsed[1:]))
    assert all(d.weekday() < 5 for d in parsed)

    with open(out_dir / "prices.json", "w", encoding="utf-8", newline="\n") as f:
        json.dump(prices, f, separators=(",", ":"))
        f.write("\n")
    with open(out_dir / "prices.csv", "w", encoding="utf-8", newline="\n") as f:
        f.write("date,close\n")
        for date, close in zip(prices["dates"], prices["close"]):
            f.write(f"{date},{fmt(close)}\n")

    dates, closes = make_universe(seed + 1, days)
    symbols = list(closes)
    with open(out_dir / "universe.csv", "w", encoding="utf-8", newline="\n") as f:
        f.write(",".join(["date", *symbols]) + "\n")
        for i, date in enumerate(dates):
            f.write(",".join([date, *(fmt(closes[s][i]) for s in symbols)]) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir", nargs="?", default=str(Path(__file__).resolve().parent))
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--days", type=int, default=DEFAULT_DAYS)
    args = parser.parse_args()
    write_files(args.output_dir, args.seed, args.days)


if __name__ == "__main__":
    main()
