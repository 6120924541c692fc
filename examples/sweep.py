#!/usr/bin/python3
"""Parameter sweep: the moving-average crossover over a grid, ranked by Sharpe.

Not a strategy: this script runs on your machine and uses the Python client
(clients/python/stratq_client) to submit examples/ma_crossover.py once per
(fast, slow) pair of the grid, all in one batch (POST /v1/jobs/batch), waits
for every job and prints them ranked by Sharpe ratio, best first. The jobs
run in parallel on however many workers there are.

    examples/sweep.py                                   # against $STRATQ_API_URL
    examples/sweep.py --fast 5,10,20 --slow 30,50,100 --cost-bps 10
    examples/sweep.py --dataset prices                  # read by the workers from STRATQ_DATA_DIR

Exit status: 0 when every job succeeded, 1 when any did not (each is listed
with its error), 2 for bad arguments, 3 when the API refused the batch or
could not be reached.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "clients" / "python"))

from stratq_client import Client, StratqError, job_spec  # noqa: E402

STRATEGY = HERE / "ma_crossover.py"
DEFAULT_DATA = HERE / "data" / "prices.csv"


def int_list(text):
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {text!r}")
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"need positive integers, got {text!r}")
    return values


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Submit the moving-average crossover over a grid of windows as one batch "
                    "and print the jobs ranked by Sharpe ratio.")
    parser.add_argument("--api-url",
                        default=os.environ.get("STRATQ_API_URL") or "http://127.0.0.1:8080",
                        help="the stratq API (default: $STRATQ_API_URL or http://127.0.0.1:8080)")
    parser.add_argument("--fast", type=int_list, default=[5, 10, 20],
                        help="fast windows, comma-separated (default 5,10,20)")
    parser.add_argument("--slow", type=int_list, default=[30, 50, 100],
                        help="slow windows, comma-separated (default 30,50,100)")
    parser.add_argument("--cost-bps", type=float, default=5.0,
                        help="trading cost in basis points (default 5)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="prices sent with each job: a .csv file (date,close) or a JSON file "
                             "(default examples/data/prices.csv)")
    source.add_argument("--dataset", help="instead of sending prices, let each job read this "
                                          "dataset of the workers' STRATQ_DATA_DIR")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds to wait for all the jobs (default 120)")
    return parser.parse_args(argv)


def grid_specs(args):
    """One job spec per (fast, slow) pair with fast < slow, and the pairs."""
    data = {}
    if not args.dataset:
        text = args.data.read_text(encoding="utf-8")
        data = {"data_csv": text} if args.data.suffix == ".csv" else {"data": json.loads(text)}
    pairs = [(f, s) for f in args.fast for s in args.slow if f < s]
    specs = []
    for fast, slow in pairs:
        params = {"fast": fast, "slow": slow, "cost_bps": args.cost_bps}
        if args.dataset:
            params["dataset"] = args.dataset
        specs.append(job_spec(STRATEGY, params, timeout_s=60, **data))
    return pairs, specs


def pct(x):
    return "-" if x is None else f"{100 * x:+.2f}%"


def main(argv=None):
    args = parse_args(argv)
    pairs, specs = grid_specs(args)
    if not specs:
        print("sweep: no (fast, slow) pair with fast < slow in the grid", file=sys.stderr)
        return 2
    client = Client(args.api_url)
    start = time.monotonic()
    try:
        ids = client.submit_batch(specs)
        print(f"submitted {len(ids)} jobs in one batch to {client.base_url}")
        deadline = start + args.timeout
        jobs = [client.wait(i, timeout=max(0.0, deadline - time.monotonic())) for i in ids]
    except StratqError as e:
        print(f"sweep: {type(e).__name__}: {e}", file=sys.stderr)
        return 3
    elapsed = time.monotonic() - start

    rows, failed = [], []
    for (fast, slow), job in zip(pairs, jobs):
        if job["status"] != "succeeded":
            failed.append((fast, slow, job))
            continue
        result = job["result"]
        m = result["metrics"]
        rows.append({"fast": fast, "slow": slow, "sharpe": m["sharpe"],
                     "total_return": m["total_return"], "max_drawdown": m["max_drawdown"],
                     "trades": result["n_trades"], "id": job["id"], "worker": job["worker"]})
    # Best Sharpe first; a flat run (no Sharpe) last; ties by the windows.
    rows.sort(key=lambda r: (r["sharpe"] is None, -(r["sharpe"] or 0.0), r["fast"], r["slow"]))

    workers = {j["worker"] for j in jobs if j.get("worker")}
    print(f"{len(rows)} of {len(jobs)} succeeded in {elapsed:.2f} s on {len(workers)} worker(s); "
          f"ranked by Sharpe (cost {args.cost_bps:g} bps)\n")
    print(f"{'rank':>4}  {'fast':>4}  {'slow':>4}  {'sharpe':>7}  {'return':>8}  "
          f"{'max_dd':>8}  {'trades':>6}  job")
    for rank, r in enumerate(rows, 1):
        sharpe = "-" if r["sharpe"] is None else f"{r['sharpe']:.3f}"
        print(f"{rank:>4}  {r['fast']:>4}  {r['slow']:>4}  {sharpe:>7}  "
              f"{pct(r['total_return']):>8}  {pct(r['max_drawdown']):>8}  {r['trades']:>6}  "
              f"{r['id']}")
    for fast, slow, job in failed:
        err = job.get("error") or {}
        print(f"fast={fast} slow={slow}: job {job['id']} {job['status']}: "
              f"{err.get('type')}: {err.get('message')}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
