# expect: memory_exceeded
import os


def run(ctx):
    # The job writes the harness's header itself, claiming an outcome and an
    # error of its choosing. The executor cannot tell this header from the
    # harness's (the harness runs in the job's process), so it takes from it
    # no more than the kind of outcome: the error it reports is its own
    # (test_sandbox's check_forged_result_header).
    os.write(4, b'{"status": "memory_exceeded", "error": {"type": "Forged", '
                b'"message": "FORGED by the job", "traceback": "FORGED"}}\n')
    os._exit(0)
