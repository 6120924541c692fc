"""One RQ worker for bench/exec.py: numpy and pandas (and the job module)
imported before the worker starts, then RQ's default Worker, which forks a
work horse per job.

usage: rq_worker.py REDIS_URL QUEUE NAME

The only addition to stock RQ is a timestamp: the queue class notes the time
right after a job is dequeued (BLPOP returned and the job hash was read) in
rq_jobs.DEQUEUED_MS, in the worker's memory, for the dequeue-to-first-line
figure. It costs no Redis command.
"""

import sys
import time

import numpy  # noqa: F401
import pandas  # noqa: F401
from redis import Redis
from rq import Queue, Worker

import rq_jobs


class StampQueue(Queue):
    @classmethod
    def dequeue_any(cls, *args, **kwargs):
        result = super().dequeue_any(*args, **kwargs)
        if result is not None and result[0] is not None:
            rq_jobs.DEQUEUED_MS = time.time() * 1000
        return result


def main():
    url, queue, name = sys.argv[1:4]
    conn = Redis.from_url(url)
    q = StampQueue(queue, connection=conn)
    w = Worker([q], connection=conn, name=name, queue_class=StampQueue)
    w.work(logging_level="WARNING")


if __name__ == "__main__":
    main()
