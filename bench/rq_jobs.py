"""The benchmark's job functions for RQ (bench/exec.py).

Each is the same code stratq runs as a strategy's `run(ctx)` (the sources
are in bench/exec.py, JOB_CODE): same statements, the parameter passed as an
argument instead of ctx.params.
"""

import time

import pandas as pd

# Set by bench/rq_worker.py's queue class in the worker right after it
# dequeues a job; the work horse forked for that job inherits the value.
DEQUEUED_MS = None


def noop(i):
    return i


def pandas_job(i):
    s = pd.Series(range(1000), dtype='float64')
    return float(s.rolling(20).mean().iloc[-1])


def first_line(i):
    t = time.time() * 1000
    return [t, DEQUEUED_MS]
