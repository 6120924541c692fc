"""No job lost: the reaper, the worker-lost cap (poison pills), retries with
backoff, completion fencing, drain, executor crashes and Redis outages.
docs/reliability.md points at each of these tests."""

import json
import os
import signal
import time

from conftest import PREFIX, QUEUE, WORKERS_KEY, children, job_pid, pid_alive, wait_for, waiting_ids

FAST = {"STRATQ_HEARTBEAT_S": "1"}  # a silent worker is reaped after 3 s
SLEEP = ("import time\n\ndef run(ctx):\n    time.sleep(ctx.params.get('s', 3))\n"
         "    return {'attempt': ctx.attempt}\n")




def test_a_killed_workers_job_is_reaped_and_run_again(stack, r):
    api = stack.start_api().client
    a = stack.start_worker(env=FAST)
    job_id = api.submit({"code": SLEEP, "params": {"s": 2}})
    job = api.wait_status(job_id, "running")
    assert job["worker"] == a.id
    os.kill(a.pid, signal.SIGKILL)  # the executor and the job die with it
    a.popen.wait(timeout=10)
    b = stack.start_worker(env=FAST)
    job = api.wait_job(job_id, timeout=60)
    assert job["status"] == "succeeded" and job["worker"] == b.id, job
    assert job["attempts"] == 2 and job["result"] == {"attempt": 2}, job
    assert int(r.hget(f"{PREFIX}:job:{job_id}", "lost")) == 1
    # The dead worker is gone from the registry, and so is its list.
    assert r.zscore(WORKERS_KEY, a.id) is None
    assert not r.exists(f"{PREFIX}:processing:{a.id}")
    assert "reaped workers that stopped heartbeating" in b.log()


def test_a_job_that_keeps_killing_its_executor_goes_dead(stack):
    """A poison pill: every run of the job takes its executor down. (The
    sandbox does not let a job signal its executor, so the test kills the
    executor each time the job runs.)"""
    api = stack.start_api().client
    worker = stack.start_worker()
    poison = "import time\n\ndef run(ctx):\n    print('attempt', ctx.attempt, flush=True)\n    time.sleep(60)\n"
    job_id = api.submit({"code": poison})
    killed = []
    while True:
        attempt = len(killed) + 1
        assert attempt <= 10, f"the job was still not dead after {len(killed)} lost executors"

        def running_or_dead():
            job = api.job(job_id)
            if job["status"] == "dead":
                return job
            if job["status"] != "running" or job.get("attempts") != attempt:
                return None
            status, logs = api.get(f"/v1/jobs/{job_id}/logs")
            return job if status == 200 and f"attempt {attempt}\n" in logs["stdout"] else None

        job = wait_for(running_or_dead, 60, f"attempt {attempt} of the poison job to run")
        if job["status"] == "dead":
            break
        job_pid(worker.pid)  # the job runs under the executor
        [executor] = children(worker.pid)
        assert executor not in killed
        os.kill(executor, signal.SIGKILL)
        killed.append(executor)
    assert len(killed) == 3, killed
    assert job["status"] == "dead", job
    assert job["dead_reason"] == "worker lost 3 times" and job["lost"] == 3, job
    assert job["error"]["type"] == "WorkerLost"
    assert worker.alive()
    # The worker restarted its executor each time and goes on.
    job = api.wait_job(api.submit({"code": "def run(ctx):\n    return 1\n"}))
    assert job["status"] == "succeeded", job
    assert worker.log().count("the executor died during a job") == 3


def test_retries_with_backoff_then_dead(stack, r):
    api = stack.start_api().client
    stack.start_worker()
    code = "def run(ctx):\n    raise ValueError(f'attempt {ctx.attempt}')\n"
    job_id = api.submit({"code": code, "max_attempts": 3, "retry_backoff_s": 0.5})
    job = api.wait_status(job_id, "scheduled", timeout=30)
    assert job["next_run_ms"] > job["finished_ms"], job
    assert r.zscore(f"{PREFIX}:scheduled", job_id) == job["next_run_ms"]
    assert job["error"]["message"] == "attempt 1"
    job = api.wait_job(job_id, timeout=60)
    assert job["status"] == "dead", job
    assert job["attempts"] == 3 and job["failures"] == 3, job
    assert job["dead_reason"] == "gave up after 3 attempts; the last one ended failed", job
    assert job["error"]["message"] == "attempt 3"
    assert r.zscore(f"{PREFIX}:dead", job_id) is not None
    # A dead job can be retried by hand, with a fresh budget.
    status, body = api.post(f"/v1/jobs/{job_id}/retry")
    assert status == 200, body
    assert api.wait_job(job_id, timeout=60)["status"] in ("scheduled", "dead")


def test_a_retry_that_succeeds(stack):
    api = stack.start_api().client
    stack.start_worker()
    code = ("def run(ctx):\n    if ctx.attempt < 2:\n        raise RuntimeError('flaky')\n"
            "    return ctx.attempt\n")
    job = api.wait_job(api.submit({"code": code, "max_attempts": 2, "retry_backoff_s": 0}))
    assert job["status"] == "succeeded" and job["result"] == 2 and job["attempts"] == 2, job


def test_a_late_result_from_a_stopped_worker_is_discarded(stack, r):
    """SIGSTOP a worker mid-job; the reaper hands the job to another worker,
    which finishes it; the stopped worker, resumed, finds its result fenced
    off. Exactly one result stands."""
    api = stack.start_api().client
    a = stack.start_worker(env=FAST)
    job_id = api.submit({"code": SLEEP, "params": {"s": 4}})
    api.wait_status(job_id, "running")
    os.kill(a.pid, signal.SIGSTOP)  # its executor and job go on running
    try:
        b = stack.start_worker(env=FAST)
        job = api.wait_job(job_id, timeout=60)
        assert job["status"] == "succeeded" and job["worker"] == b.id, job
        assert job["result"] == {"attempt": 2}, job
    finally:
        os.kill(a.pid, signal.SIGCONT)
    wait_for(lambda: "discarded a late result" in a.log(), 30, "the stopped worker to discard its result")
    job = api.job(job_id)
    assert job["worker"] == b.id and job["result"] == {"attempt": 2} and job["attempts"] == 2, job
    # The resumed worker registers again and goes on working.
    assert stack.stop(b) == 0
    job = api.wait_job(api.submit({"code": "def run(ctx):\n    return 'a again'\n"}))
    assert job["status"] == "succeeded" and job["worker"] == a.id, job


def test_drain_timeout_requeues_without_counting_the_run(stack, r):
    api = stack.start_api().client
    w = stack.start_worker(env={"STRATQ_DRAIN_TIMEOUT_S": "1"})
    slow_first = ("import time\n\ndef run(ctx):\n    time.sleep(60 if ctx.attempt == 1 else 0)\n"
                  "    return ctx.attempt\n")
    job_id = api.submit({"code": slow_first, "max_attempts": 2})
    api.wait_status(job_id, "running")
    executor = children(w.pid)
    assert len(executor) == 1
    job_child = children(executor[0])
    t0 = time.monotonic()
    assert stack.stop(w) == 0
    assert time.monotonic() - t0 < 15
    job = api.job(job_id)
    assert job["status"] == "queued" and job.get("failures") is None, job
    assert r.llen(QUEUE) == 1 and waiting_ids(r) == [job_id]
    for pid in executor + job_child:
        wait_for(lambda: not pid_alive(pid), 10, f"process {pid} of the drained worker to be gone")
    # The next worker runs it to the end; the drained run cost no attempt.
    stack.start_worker()
    job = api.wait_job(job_id)
    assert job["status"] == "succeeded" and job["result"] == 2, job
    assert job.get("failures") is None, job


def test_second_signal_requeues_at_once(stack, r):
    api = stack.start_api().client
    w = stack.start_worker()  # default drain timeout: 25 s
    job_id = api.submit({"code": SLEEP, "params": {"s": 60}})
    api.wait_status(job_id, "running")
    t0 = time.monotonic()
    # Two different signals: they cannot merge into one pending signal.
    os.kill(w.pid, signal.SIGTERM)
    os.kill(w.pid, signal.SIGINT)
    assert w.popen.wait(timeout=15) == 0
    assert time.monotonic() - t0 < 10
    assert api.job(job_id)["status"] == "queued"
    assert r.llen(QUEUE) == 1 and waiting_ids(r) == [job_id]


def test_a_result_finished_during_a_redis_outage_is_written_later(private_redis, stack):
    rc = private_redis.client()
    api_args = ["--redis-url", private_redis.url]
    api = stack.start_api(args=api_args).client
    worker = start_private_worker(stack, private_redis)
    code = ("import time\n\ndef run(ctx):\n    print('started', flush=True)\n"
            "    time.sleep(2)\n    return {'attempt': ctx.attempt}\n")
    job_id = api.submit({"code": code})
    api.wait_printed(job_id, "started")
    job_proc = job_pid(worker.pid)  # from outside: the job may not know its host pid
    private_redis.stop()  # graceful: the AOF is complete
    # The job ends while Redis is down; its result waits in the worker.
    wait_for(lambda: not pid_alive(job_proc), 30, "the job to end during the outage")
    assert _status(rc, job_id) is None  # Redis really is down
    private_redis.start()
    wait_for(lambda: _status(rc, job_id) == "succeeded", 60, "the held result to be written")
    wait_for(api.healthy, 30, "the API to reconnect")
    assert json.loads(rc.hget(f"{PREFIX}:job:{job_id}", "result")) == {"attempt": 1}
    # And the worker consumes again after reconnecting.
    job = api.wait_job(api.submit({"code": "def run(ctx):\n    return 'after'\n"}), timeout=60)
    assert job["status"] == "succeeded" and job["result"] == "after", job


def start_private_worker(stack, private_redis):
    """A worker on the test's own Redis (stack.start_worker watches the shared one)."""
    proc = stack.spawn("worker", ["worker", "--redis-url", private_redis.url])
    rc = private_redis.client()
    wait_for(lambda: any(rc.hget(f"{PREFIX}:worker:{w}", "pid") == str(proc.pid)
                         for w in rc.zrange(WORKERS_KEY, 0, -1)), 30,
             lambda: f"worker {proc.pid} to register\n{proc.describe()}")
    return proc


def _status(rc, job_id):
    try:
        return rc.hget(f"{PREFIX}:job:{job_id}", "status")
    except Exception:
        return None


def test_nothing_is_lost_across_a_redis_restart_with_aof(private_redis, stack):
    api_args = ["--redis-url", private_redis.url]
    api = stack.start_api(args=api_args).client
    status, body = api.post("/v1/jobs/batch", {"jobs": [{"code": f"def run(ctx):\n    return {i}\n"}
                                                        for i in range(50)]})
    assert status == 200
    ids = [j["id"] for j in body["jobs"]]
    private_redis.stop()
    private_redis.start()
    rc = private_redis.client()
    assert rc.llen(QUEUE) == 50
    wait_for(api.healthy, 30, "the API to reconnect")
    start_private_worker(stack, private_redis)
    for i, job_id in enumerate(ids):
        job = api.wait_job(job_id, timeout=120)
        assert job["status"] == "succeeded" and job["result"] == i, job
