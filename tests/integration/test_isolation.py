"""One job, one process: nothing a job changes reaches the next job on the
same worker, in warm mode (forked from a preloaded interpreter) as in cold.
Also numpy and pandas inside job children, fresh entropy per job, and a
kill -9 of the executor mid-job."""

import os
import signal

from conftest import children, job_pid, pid_alive, wait_for

POLLUTE = '''
import os, sys, tempfile
import pandas as pd

COUNTER = 0

def run(ctx):
    global COUNTER
    COUNTER += 1
    sys.modules["injected_module"] = object()
    pd.DataFrame.sum = lambda self, *a, **k: "monkeypatched"
    os.environ["LEAKED_SECRET"] = "x"
    path = os.path.join(tempfile.gettempdir(), "left-behind.txt")
    open(path, "w").write("data")
    open("in-cwd.txt", "w").write("data")
    return {"counter": COUNTER, "tmp": tempfile.gettempdir(), "cwd": os.getcwd()}
'''

CHECK = '''
import os, sys, tempfile
import pandas as pd

COUNTER = 0

def run(ctx):
    import strategy
    return {
        "counter": COUNTER,
        "injected": "injected_module" in sys.modules,
        "sum": int(pd.DataFrame({"a": [1, 2]}).sum()["a"]),
        "env": os.environ.get("LEAKED_SECRET"),
        "tmp_files": os.listdir(tempfile.gettempdir()),
        "cwd_files": os.listdir("."),
        "tmp": tempfile.gettempdir(),
    }
'''


def test_no_state_leaks_between_jobs(stack):
    api = stack.start_api().client
    stack.start_worker()
    first = api.wait_job(api.submit({"code": POLLUTE}))
    assert first["status"] == "succeeded", first
    assert first["result"]["counter"] == 1
    second = api.wait_job(api.submit({"code": CHECK}))
    assert second["status"] == "succeeded", second
    r = second["result"]
    assert r["counter"] == 0            # module globals
    assert r["injected"] is False       # sys.modules
    assert r["sum"] == 3                # monkeypatched pandas
    assert r["env"] is None             # environment
    assert r["tmp_files"] == [] and r["cwd_files"] == []  # files in the temp dir
    assert r["tmp"] != first["result"]["tmp"]             # a new temp dir per job
    # The first job's temp dir is gone.
    assert not os.path.exists(first["result"]["tmp"])


def test_numpy_and_pandas_in_job_children_with_fresh_entropy(stack):
    api = stack.start_api().client
    stack.start_worker()
    code = '''
import random
import numpy as np
import pandas as pd

def run(ctx):
    a = np.random.default_rng(7).random((120, 120))
    x = np.linalg.solve(a @ a.T + np.eye(120), np.ones(120))
    prices = pd.Series(np.linspace(1, 2, 1000))
    return {"residual": float(np.abs((a @ a.T + np.eye(120)) @ x - 1).max()),
            "mean": float(prices.rolling(20).mean().iloc[-1]),
            "np": float(np.random.rand()), "gauss": float(np.random.normal()),
            "py": random.random()}
'''
    results = [api.wait_job(api.submit({"code": code})) for _ in range(4)]
    assert all(j["status"] == "succeeded" for j in results), results
    for j in results:
        assert j["result"]["residual"] < 1e-6
        assert abs(j["result"]["mean"] - 1.9904904904904905) < 1e-9
    # Each job gets its own entropy, never a sibling's RNG state.
    assert len({j["result"]["np"] for j in results}) == 4
    assert len({j["result"]["gauss"] for j in results}) == 4
    assert len({j["result"]["py"] for j in results}) == 4




def test_kill_9_of_the_executor_requeues_the_job(stack):
    api = stack.start_api().client
    worker = stack.start_worker()
    code = ("import time\n\ndef run(ctx):\n    print('attempt', ctx.attempt, flush=True)\n"
            "    time.sleep(3 if ctx.attempt == 1 else 0)\n    return ctx.attempt\n")
    job_id = api.submit({"code": code})
    api.wait_printed(job_id, "attempt 1")
    # Found from outside (a job may not see the executor: its getppid() can be 0).
    job_proc = job_pid(worker.pid)
    [executor] = children(worker.pid)
    os.kill(executor, signal.SIGKILL)
    wait_for(lambda: not pid_alive(job_proc), 10, f"the job's process {job_proc} to die with its executor")
    job = api.wait_job(job_id, timeout=60)
    assert job["status"] == "succeeded" and job["result"] == 2 and job["lost"] == 1, job
    assert not pid_alive(executor)
    new = children(worker.pid)
    assert len(new) == 1 and new[0] != executor
    assert "the executor died during a job" in worker.log()


def test_a_two_process_pool_works_inside_a_job(stack):
    api = stack.start_api().client
    stack.start_worker()
    code = ("import multiprocessing as mp\n\ndef sq(x):\n    return x * x\n\n"
            "def run(ctx):\n    with mp.get_context('fork').Pool(2) as p:\n"
            "        return sum(p.map(sq, range(100)))\n")
    job = api.wait_job(api.submit({"code": code}))
    assert job["status"] == "succeeded" and job["result"] == 328350, job


def test_worker_check_reports_the_sandbox_layers():
    import subprocess
    from conftest import STRATQ_BIN

    res = subprocess.run([str(STRATQ_BIN), "worker", "--check"], capture_output=True, text=True,
                         timeout=30)
    assert "seccomp: active" in res.stdout and "landlock: active" in res.stdout, res.stdout
    assert res.returncode == 0
