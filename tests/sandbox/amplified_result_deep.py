# expect: output_exceeded
import os


def run(ctx):
    # A result nested a million levels deep, past the cap on depth
    # (STRATQ_MAX_RESULT_DEPTH, 256). json.dumps cannot write it (it stops
    # at about 1,000 levels), so the job writes the result pipe itself, past
    # the harness: only the executor's own check stands, and it must neither
    # recurse into the nesting nor take a json_t per level
    # (test_sandbox's check_executor_memory).
    depth = 1000 * 1000
    os.write(4, b'{"status": "succeeded"}\n' + b"[" * depth + b"]" * depth)
    os._exit(0)
