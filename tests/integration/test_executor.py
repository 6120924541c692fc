"""What a job leaves behind, and queue entries a worker must survive."""

import json
import os


from conftest import PREFIX, QUEUE, pids_named, wait_for

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
