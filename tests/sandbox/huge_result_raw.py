# expect: output_exceeded
import os


def run(ctx):
    # The result pipe written directly, past the harness and its check of
    # the size: only the executor's cap (STRATQ_MAX_RESULT) stops this.
    os.write(4, b'{"status": "succeeded"}\n')
    chunk = b"x" * 65536
    while True:
        os.write(4, chunk)
