# expect: output_exceeded
# timeout_s: 30
def run(ctx):
    # A result as long as STRATQ_MAX_RESULT (16 MiB, the header included)
    # lets the harness write, of 5.6 million empty objects: past the cap on
    # values (STRATQ_MAX_RESULT_VALUES, 4,000,000). Parsed into jansson
    # values, such a result cost the executor 1.35 GB; it is only validated
    # now, which costs no memory (test_sandbox's check_executor_memory: the
    # executor's peak RSS). The result is one dict a million times over, so
    # that the job itself needs little memory.
    max_result = 16 * 1024 * 1024
    header = len(b'{"status": "succeeded"}\n')
    return [{}] * ((max_result - header - 1) // 3)
