"""What a job leaves behind, and queue entries a worker must survive."""

import json
import os
import signal
import socket

import pytest

from conftest import (EXECUTOR_BIN, PREFIX, QUEUE, job_pid, pids_named, process_group_members,
                      wait_for)

ESCAPE = """
import ctypes, os, time

def run(ctx):
    # A grandchild that leaves the job's process group and session. It takes
    # the name the test gave it, by which the test finds it from outside
    # (its pid may be one of the job's own pid namespace).
    r, w = os.pipe()
    if os.fork() == 0:
        try:
            os.setsid()
            if os.fork() == 0:
                if ctypes.CDLL(None).prctl(15, ctx.params["name"].encode(), 0, 0, 0) == 0:
                    os.write(w, b"1")
                os.close(w)
                time.sleep(120)
        finally:
            os._exit(0)
    os.close(w)
    return {"started": os.read(r, 1) == b"1"}
"""


def test_processes_a_job_leaves_are_killed(stack):
    api = stack.start_api().client
    stack.start_worker()
    name = f"sq-left-{os.getpid() % 100000}"
    job = api.wait_job(api.submit({"code": ESCAPE, "params": {"name": name}}))
    assert job["status"] == "succeeded" and job["result"] == {"started": True}, job
    # The grandchild is killed when the job ends, not left running under
    # init (the executor is a subreaper; a job's pid namespace ends with it).
    wait_for(lambda: not pids_named(name), 10, f"the process {name!r} left by the job to be gone")
    # The worker goes on to the next job.
    job = api.wait_job(api.submit({"code": "def run(ctx):\n    return 7\n"}))
    assert job["status"] == "succeeded" and job["result"] == 7, job


def test_malformed_queue_entries_are_dropped_and_the_worker_goes_on(stack, r):
    api = stack.start_api().client
    worker = stack.start_worker()
    too_long = "x" * 100
    r.lpush(QUEUE, too_long)
    r.lpush(QUEUE, "bad:id")
    r.lpush(QUEUE, "no-such-job")
    job = api.wait_job(api.submit({"code": "def run(ctx):\n    return 'after'\n"}))
    assert job["status"] == "succeeded" and job["result"] == "after", job
    assert r.llen(QUEUE) == 0
    assert r.llen(f"{PREFIX}:processing:{worker.id}") == 0
    # Each is dead-lettered with its reason.
    letters = [json.loads(x) for x in r.lrange(f"{PREFIX}:deadletter", 0, -1)]
    reasons = {d["entry"]: d["reason"] for d in letters}
    assert reasons == {too_long: "not a job id (1-64 of [A-Za-z0-9_-])",
                       "bad:id": "not a job id (1-64 of [A-Za-z0-9_-])",
                       "no-such-job": "no job hash for this id"}, letters
    assert all(d["worker"] == worker.id for d in letters)
    assert "dead-lettered a queue entry" in worker.log()


def test_an_invalid_spec_from_a_foreign_producer_is_dead_lettered(stack, r):
    api = stack.start_api().client
    stack.start_worker()
    r.hset(f"{PREFIX}:job:foreign-1", mapping={"spec": '{"code": 42}', "status": "queued"})
    r.lpush(QUEUE, "foreign-1")
    r.hset(f"{PREFIX}:job:foreign-2", mapping={"spec": "not json", "status": "queued"})
    r.lpush(QUEUE, "foreign-2")
    for job_id, words in (("foreign-1", "'code' must be a string"), ("foreign-2", "not valid JSON")):
        job = api.wait_job(job_id)
        assert job["status"] == "dead", job
        assert job["error"]["type"] == "InvalidSpec" and words in job["error"]["message"], job
        assert job["dead_reason"].startswith("invalid spec:"), job
        assert r.zscore(f"{PREFIX}:dead", job_id) is not None
    # The worker goes on.
    job = api.wait_job(api.submit({"code": "def run(ctx):\n    return 1\n"}))
    assert job["status"] == "succeeded", job


USAGE = """
import os, time

def burn(seconds):
    t = time.process_time()
    while time.process_time() - t < seconds:
        pass

def run(ctx):
    pid = os.fork()
    if pid == 0:
        burn(0.4)
        os._exit(0)
    os.waitpid(pid, 0)
    burn(0.4)
    block = b"x" * (96 << 20)  # written, so resident
    return len(block)
"""


def test_usage_counts_the_jobs_cpu_with_its_childrens_and_its_peak_memory(stack):
    # A success is told before the job's process has ended (the executor
    # reads its usage from outside while the harness waits): the CPU of
    # the children it waited for and its peak memory are still counted.
    api = stack.start_api().client
    stack.start_worker()
    job = api.wait_job(api.submit({"code": USAGE}))
    assert job["status"] == "succeeded" and job["result"] == 96 << 20, job
    usage = job["usage"]
    assert usage["cpu_ms"] >= 700, usage
    assert usage["max_rss_kb"] >= 96 << 10, usage
    assert usage["wall_ms"] >= 700, usage


def test_results_with_nul_and_unicode_are_kept(stack):
    api = stack.start_api().client
    stack.start_worker()
    code = "def run(ctx):\n    return {'s': 'a\\x00b', 'u': '\\u00e9\\u4e2d', 'f': 0.1}\n"
    job = api.wait_job(api.submit({"code": code}))
    assert job["status"] == "succeeded", job
    assert job["result"] == {"s": "a\x00b", "u": "\u00e9\u4e2d", "f": 0.1}


def test_integers_past_64_bits_are_kept_as_strings(stack):
    # Python's json writes integers of any size; clients such as the CLI
    # read 64-bit ones: the harness writes the others as their decimal
    # strings (docs/strategies.md).
    api = stack.start_api().client
    stack.start_worker()
    code = ("def run(ctx):\n"
            "    return {'big': 2**70, 'neg': -2**70, 'edge': [2**63 - 1, -2**63, 2**63, -2**63 - 1],\n"
            "            'nested': {'x': [(2**64, 1.5, True)]}}\n")
    job = api.wait_job(api.submit({"code": code}))
    assert job["status"] == "succeeded", job
    assert job["result"] == {"big": str(2**70), "neg": str(-2**70),
                             "edge": [2**63 - 1, -2**63, str(2**63), str(-2**63 - 1)],
                             "nested": {"x": [[str(2**64), 1.5, True]]}}, job
    job = api.wait_job(api.submit({"code": "def run(ctx):\n    return 2**70\n"}))
    assert job["status"] == "succeeded" and job["result"] == str(2**70), job


def test_unencodable_result_and_message_fail_cleanly(stack):
    api = stack.start_api().client
    stack.start_worker()
    job = api.wait_job(api.submit({"code": "def run(ctx):\n    return '\\udc80'\n"}))
    assert job["status"] == "failed", job
    assert job["error"]["type"] == "ResultNotSerializable", job
    job = api.wait_job(api.submit({"code": "def run(ctx):\n    raise OSError('bad \\udc80 name')\n"}))
    assert job["status"] == "failed", job
    assert job["error"]["type"] == "OSError" and "bad" in job["error"]["message"], job


def test_a_worker_without_a_working_executor_takes_no_job(stack, r, tmp_path):
    api = stack.start_api().client
    empty = tmp_path / "no-harness"
    empty.mkdir()
    broken = stack.spawn("worker", ["worker", "--redis-url", stack.redis_url,
                                    "--harness-dir", str(empty)])
    # It keeps trying to start its executor, and meanwhile leaves the queue alone.
    wait_for(lambda: broken.log().count("the executor did not start") >= 2, 30,
             "the broken worker to retry its executor")
    job_id = api.submit({"code": "def run(ctx):\n    return 1\n"})
    assert api.job(job_id)["status"] == "queued"
    stack.start_worker()
    job = api.wait_job(job_id)
    assert job["status"] == "succeeded", job
    assert stack.stop(broken) == 0


def test_a_result_over_the_cap_ends_the_job_at_once(stack):
    # A job that writes its result pipe itself, past the harness, without
    # end: the executor reads up to the cap, then kills the job. Reading the
    # 128 MiB took minutes when the buffer grew by each 64 KiB read (issue
    # 14), and the job ended as a timeout instead.
    api = stack.start_api().client
    stack.start_worker(env={"STRATQ_MAX_RESULT": str(128 * 1024 * 1024)})
    code = ("import os\n\ndef run(ctx):\n    os.write(4, b'{\"status\": \"succeeded\"}\\n')\n"
            "    chunk = b'x' * 65536\n    while True:\n        os.write(4, chunk)\n")
    job = api.wait_job(api.submit({"code": code, "timeout_s": 20}), timeout=60)
    assert job["status"] == "output_exceeded", job
    assert job["error"]["type"] == "ResultTooLarge", job


def test_the_harness_does_not_write_a_result_over_the_cap(stack):
    api = stack.start_api().client
    stack.start_worker(env={"STRATQ_MAX_RESULT": "1024"})

    def submit(value):
        return api.submit({"code": f"def run(ctx):\n    print('before')\n    return {value}\n"})

    fits, too_long, too_many_bytes = submit("'x' * 900"), submit("'x' * 2000"), submit("'é' * 600")
    job = api.wait_job(fits)
    assert job["status"] == "succeeded" and job["result"] == "x" * 900, job
    for job in (api.wait_job(too_long), api.wait_job(too_many_bytes)):
        assert job["status"] == "output_exceeded", job
        assert job["error"]["type"] == "ResultTooLarge" and "1024 bytes" in job["error"]["message"], job
        assert job["stdout"] == "before\n" and job.get("result") is None, job


def test_a_result_too_large_to_encode_is_memory_exceeded(stack):
    # The string fits in the job's memory; its JSON text does not.
    api = stack.start_api().client
    stack.start_worker()
    code = "def run(ctx):\n    return 'x' * (200 * 1024 * 1024)\n"
    job = api.wait_job(api.submit({"code": code, "memory_mb": 256, "timeout_s": 20}), timeout=60)
    assert job["status"] == "memory_exceeded", job


# A job that writes the result pipe itself, past the harness: the header,
# then params.result as its result.
WRITES_RESULT = """
import os

def run(ctx):
    os.write(4, ctx.params.get("header", '{"status": "succeeded"}').encode() + b"\\n"
             + ctx.params["result"].encode())
    os._exit(0)
"""


def test_a_result_over_the_depth_or_value_cap_is_output_exceeded(stack):
    # The executor validates a result within STRATQ_MAX_RESULT_DEPTH and
    # STRATQ_MAX_RESULT_VALUES, without parsing it; over one, the job is
    # output_exceeded and the message names the cap.
    api = stack.start_api().client
    stack.start_worker(env={"STRATQ_MAX_RESULT_DEPTH": "4", "STRATQ_MAX_RESULT_VALUES": "10"})

    def run(value):
        return api.wait_job(api.submit({"code": f"def run(ctx):\n    return {value}\n"}))

    fits = run("[[[[1, 2]]], 3, 5, {'a': 4}]")  # 4 deep, 10 values
    assert fits["status"] == "succeeded" and fits["result"] == [[[[1, 2]]], 3, 5, {"a": 4}], fits
    for value, message in [
        ("[[[[[]]]]]", "the job's result nests deeper than 4 levels (STRATQ_MAX_RESULT_DEPTH)"),
        ("list(range(10))", "the job's result holds more than 10 values (STRATQ_MAX_RESULT_VALUES)"),
    ]:
        job = run(value)
        assert job["status"] == "output_exceeded", job
        assert job["error"] == {"type": "ResultTooLarge", "message": message}, job
        assert job.get("result") is None, job


def test_a_result_written_past_the_harness_is_validated(stack):
    api = stack.start_api().client
    stack.start_worker()

    def run(params):
        return api.wait_job(api.submit({"code": WRITES_RESULT, "params": params}))

    # Integers of any size are JSON: kept and served as the job wrote them.
    job = run({"result": '{"big": 123456789012345678901234567890, "f": 1.10}'})
    assert job["status"] == "succeeded", job
    assert job["result"] == {"big": 123456789012345678901234567890, "f": 1.1}, job
    # Not JSON: crashed, as before, saying where.
    job = run({"result": '[{}, {}, nope]'})
    assert job["status"] == "crashed", job
    assert job["error"] == {"type": "HarnessError",
                            "message": "the job's result is not JSON (byte 10 of 14)"}, job
    # A header the harness would not write, past its caps: parsed not at all.
    header = json.dumps({"status": "failed", "error": {"type": "X", "items": [{}] * 100}})
    job = run({"header": header, "result": ""})
    assert job["status"] == "output_exceeded", job
    assert job["error"] == {"type": "ResultTooLarge", "message": "the job's result header holds "
                            "more than 64 values or nests deeper than 8 levels"}, job


# --- Failure exits leave nothing behind --------------------------------------
#
# However a worker or its executor ends, it leaves no executor or job
# process, no work directory (which holds every job directory) and no
# cgroup directory (stratq-exec-<executor pid>-<pid namespace>) behind. The executor's
# work directory is read from its debug log line "executor ready", its pids
# from its log lines; the executor shares the worker's process group.

LINGER = """
import ctypes, os, time

def run(ctx):
    # A grandchild in a session of its own, named so that the test finds it.
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            ctypes.CDLL(None).prctl(15, ctx.params["name"].encode(), 0, 0, 0)
            time.sleep(120)
        os._exit(0)
    print(os.getcwd(), flush=True)
    time.sleep(120)
"""


def _cgroup_parents():
    """The cgroup directories an executor started by this test makes its own
    in: the test's cgroup in each hierarchy (the worker and its executor
    inherit it)."""
    parents = []
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            names = [c.replace("name=", "") for c in controllers.split(",")] if controllers else ["unified", ""]
            for name in names:
                d = os.path.normpath(f"/sys/fs/cgroup/{name}/{path}")
                if os.path.isdir(d) and d not in parents:
                    parents.append(d)
    return parents


def _start_time(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except OSError:
        return None


def _executor_pids(worker):
    return {line["pid"] for line in worker.log_lines_json() if line.get("component") == "executor"}


def _work_dirs(worker):
    return {line["work_dir"] for line in worker.log_lines_json() if line.get("msg") == "executor ready"}


def _cgroup_dirs(worker):
    ns = os.stat("/proc/self/ns/pid").st_ino  # the worker's, started by this test
    return [f"{p}/stratq-exec-{e}-{ns}" for p in _cgroup_parents() for e in _executor_pids(worker)]


def _left_behind(worker, names=(), procs=()):
    """What the stopped worker and its executors left: processes (its
    process group, the named ones, the (pid, start time) of procs),
    work directories and cgroup directories."""
    left = [f"process {p} ({c})" for p, c in process_group_members(worker.pid).items()]
    left += [f"the process named {n}" for n in names if pids_named(n)]
    left += [f"process {p}" for p, t in procs if t is not None and _start_time(p) == t]
    left += [d for d in _work_dirs(worker) if os.path.lexists(d)]
    left += [d for d in _cgroup_dirs(worker) if os.path.lexists(d)]
    return left


def _wait_nothing_left(worker, **kw):
    last = {}

    def clean():
        last["left"] = _left_behind(worker, **kw)
        return not last["left"]

    wait_for(clean, 30, lambda: f"nothing left behind by worker {worker.pid}; left: {last['left']}\n"
             f"{worker.describe()}")


def _linger_running(stack, api, worker, name):
    """Starts LINGER on worker and waits until it runs; returns its job id,
    its directory and (pid, start time) of its process. Its directory is in
    its executor's work directory, and the executor's cgroup exists."""
    job_id = api.submit({"code": LINGER, "params": {"name": name}})
    job_dir = api.wait_printed(job_id).strip()
    wait_for(lambda: pids_named(name), 30, f"the process {name!r} the job starts")
    pid = job_pid(worker.pid)
    [work_dir] = _work_dirs(worker)
    assert os.path.dirname(job_dir) == work_dir and os.path.isdir(job_dir), (job_dir, work_dir)
    layers = json.loads(stack.worker_hash(worker)["sandbox"])
    if layers["cgroup"] == "active":
        assert any(os.path.isdir(d) for d in _cgroup_dirs(worker)), _cgroup_dirs(worker)
    return job_id, job_dir, (pid, _start_time(pid))


def test_a_killed_supervisor_leaves_nothing_behind(stack):
    """The supervisor dies mid-job (its socket to the executor closes): the
    executor sees the end of file, ends the job and leaves by its one way
    out."""
    api = stack.start_api().client
    worker = stack.start_worker(args=["--log-level", "debug"])
    name = f"sq-sup-{os.getpid() % 100000}"
    _, job_dir, proc = _linger_running(stack, api, worker, name)
    os.kill(worker.pid, signal.SIGKILL)
    worker.popen.wait(timeout=10)
    _wait_nothing_left(worker, names=[name], procs=[proc])
    assert not os.path.lexists(job_dir)


def test_a_killed_executors_directory_is_removed_by_its_successor(stack):
    """An executor SIGKILLed mid-job cannot clean up: the next executor to
    start removes its work directory (no live executor holds its lock)."""
    api = stack.start_api().client
    worker = stack.start_worker(args=["--log-level", "debug"])
    job_id = api.submit({"code": "import os, time\n\ndef run(ctx):\n"
                                 "    print(os.getcwd(), flush=True)\n    time.sleep(120)\n"})
    job_dir = api.wait_printed(job_id).strip()
    [first] = _executor_pids(worker)
    [work_dir] = _work_dirs(worker)
    assert os.path.dirname(job_dir) == work_dir
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: len(_work_dirs(worker)) == 2, 30, f"a new executor\n{worker.describe()}")
    wait_for(lambda: not os.path.lexists(work_dir), 10,
             f"{work_dir} removed by the new executor\n{worker.describe()}")
    # Which executor removed it is not asserted: any executor of this uid
    # that starts sweeps /tmp, and under pytest -n an executor of a test
    # running alongside may get there first (and log it in its own log).
    # Run alone, the successor is the only one that can.
    if "PYTEST_XDIST_WORKER" not in os.environ:
        assert "removed the work directory of an executor that is gone" in worker.log()
    # The job went back to the queue and the new executor runs it.
    api.wait_printed(job_id)
    assert stack.stop(worker) == 0
    _wait_nothing_left(worker)


def test_sigterm_during_a_job_leaves_nothing_behind(stack):
    """SIGTERM while a job runs, past the drain timeout: the job is given
    back to the queue, the executor kills it and removes what it made."""
    api = stack.start_api().client
    worker = stack.start_worker(env={"STRATQ_DRAIN_TIMEOUT_S": "1"}, args=["--log-level", "debug"])
    name = f"sq-term-{os.getpid() % 100000}"
    job_id, job_dir, proc = _linger_running(stack, api, worker, name)
    assert stack.stop(worker) == 0
    assert "drain timeout passed; giving the job back to the queue" in worker.log()
    _wait_nothing_left(worker, names=[name], procs=[proc])
    assert not os.path.lexists(job_dir)
    assert api.job(job_id)["status"] == "queued"


def _broken_harness(tmp_path):
    """A harness directory whose package will not import."""
    pkg = tmp_path / "broken-harness" / "stratq"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "_harness.py").write_text("raise ImportError('a broken harness')\n")
    return pkg.parent


@pytest.mark.parametrize("why", ["no harness", "a broken harness", "a required layer missing"])
def test_an_executor_that_cannot_start_leaves_nothing_behind(stack, tmp_path, why):
    """An executor that cannot start, before anything is made (no harness),
    after its work directory, sandbox and cgroup are made (a harness that
    will not import, in warm mode), or refused by the supervisor once ready
    (a layer STRATQ_SANDBOX_REQUIRE names is missing)."""
    warm = os.environ.get("STRATQ_MODE", "warm") == "warm"
    if why == "a broken harness" and not warm:
        pytest.skip("a cold executor imports no harness before its jobs")
    args = ["worker", "--redis-url", stack.redis_url, "--log-level", "debug"]
    env = {}
    if why == "no harness":
        (tmp_path / "empty").mkdir()
        args += ["--harness-dir", str(tmp_path / "empty")]
    elif why == "a broken harness":
        args += ["--harness-dir", str(_broken_harness(tmp_path))]
    else:
        env["STRATQ_SANDBOX_REQUIRE"] = "userns" if os.geteuid() == 0 else "uid"
    worker = stack.spawn("worker", args, env=env)
    if why == "a required layer missing":
        assert worker.popen.wait(timeout=60) == 1, worker.describe()
        assert "a required sandbox layer is missing; not taking jobs" in worker.log()
        assert _work_dirs(worker), worker.describe()  # it got as far as its work directory
    else:
        wait_for(lambda: worker.log().count("the executor did not start") >= 2, 60,
                 lambda: f"the worker to retry its executor\n{worker.describe()}")
        assert stack.stop(worker) == 0
        message = ("cannot find the stratq Python harness" if why == "no harness"
                   else "cannot start warm mode")
        assert message in worker.log()
        assert not _work_dirs(worker)  # it never said it was ready
    assert len(_executor_pids(worker)) >= 1
    _wait_nothing_left(worker)


# --------------------------------------------------------------------------
# The fork floor (`make bench-exec`)
# --------------------------------------------------------------------------


def fork_floor(n, preload, mode="warm"):
    """`stratq-executor --fork-floor n`, with a socket on fd 3 as the worker
    gives it: (exit code, the JSON line or None, stderr)."""
    ours, theirs = socket.socketpair()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        pid = os.posix_spawn(
            str(EXECUTOR_BIN), [str(EXECUTOR_BIN), "--fork-floor", str(n), "--preload", preload],
            {**os.environ, "STRATQ_MODE": mode, "STRATQ_LOG_LEVEL": "warn"},
            file_actions=[(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                          (os.POSIX_SPAWN_DUP2, out_w, 1), (os.POSIX_SPAWN_DUP2, err_w, 2),
                          (os.POSIX_SPAWN_DUP2, theirs.fileno(), 3)])
        os.close(out_w)
        os.close(err_w)
        out_w = err_w = -1
        with os.fdopen(out_r) as o, os.fdopen(err_r) as e:
            out_r = err_r = -1
            stdout, stderr = o.read(), e.read()  # to their ends: the executor's exit
        _, status = os.waitpid(pid, 0)
        rc = os.waitstatus_to_exitcode(status)
    finally:
        ours.close()
        theirs.close()
        for fd in (out_r, out_w, err_r, err_w):
            if fd >= 0:
                os.close(fd)
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    return rc, json.loads(lines[-1]) if lines else None, stderr


def test_the_fork_floor_forks_the_warm_interpreter_and_reports_its_cost():
    rc, floor, err = fork_floor(50, "json")
    assert rc == 0 and floor, err
    assert floor["forks"] == 50 and floor["preload"] == "json", floor
    # CPU is the parent's and the children's together; the children pay the
    # exit's unmapping.
    assert floor["cpu_us"] > 0 and floor["cpu_us"] >= floor["parent_cpu_us"], floor
    assert abs(floor["cpu_us"] - floor["parent_cpu_us"] - floor["child_cpu_us"]) < 1, floor
    assert floor["wall_us"] > 0 and floor["wall_p50_us"] > 0, floor
    assert floor["rss_kb"] > 0 and floor["anon_kb"] > 0 and floor["maps"] > 10, floor
    # A bigger interpreter is a bigger process to fork.
    _, numpy_floor, err = fork_floor(5, "numpy")
    assert numpy_floor and numpy_floor["rss_kb"] > floor["rss_kb"], (floor, numpy_floor, err)


def test_the_fork_floor_needs_warm_mode():
    rc, floor, err = fork_floor(5, "", mode="cold")
    assert rc != 0 and floor is None, err
