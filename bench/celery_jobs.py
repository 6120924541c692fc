"""The benchmark's job functions for Celery (bench/suite.py, `make bench`).

The same statements as the stratq strategies and bench/rq_jobs.py. numpy and
pandas are imported here, at module import, so Celery's prefork pool children
(forked from the master after it imported this module) have them preloaded,
like stratq's warm executor and bench/rq_worker.py.

Broker and result backend: the same redis-server, BENCH_CELERY_BROKER (db 0)
and BENCH_CELERY_BACKEND (db 1) from the environment.
"""

import os
import time

import numpy  # noqa: F401
import pandas as pd
from celery import Celery

app = Celery("celery_jobs",
             broker=os.environ.get("BENCH_CELERY_BROKER", "redis://127.0.0.1:6379/0"),
             backend=os.environ.get("BENCH_CELERY_BACKEND", "redis://127.0.0.1:6379/1"))
app.conf.update(
    task_acks_late=True,              # ack after the task ran, like stratq's BLMOVE + ack
    worker_prefetch_multiplier=1,     # one reserved task per pool process
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)


@app.task(name="bench.noop")
def noop(i):
    return i


@app.task(name="bench.pandas")
def pandas_job(i):
    s = pd.Series(range(1000), dtype='float64')
    return float(s.rolling(20).mean().iloc[-1])


@app.task(name="bench.first_line")
def first_line(i):
    t = time.time() * 1000
    return t
