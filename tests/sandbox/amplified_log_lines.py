# expect: succeeded
import os


def run(ctx):
    # Log lines written to the events pipe directly, past ctx.log: first
    # 1,000 of 5,000 values each (15 KB, under the 16 KiB a line may be, but
    # over the 1,024 values the executor parses in one), then 1,000 of 1,000
    # values. The first are dropped unparsed; the others are kept, as text,
    # not as a json_t tree each (test_sandbox's check_amplified_log_lines:
    # the executor's peak RSS, and the 1,000 lines in the job's log).
    def line(n):
        return b'{"t":"log","msg":"m","fields":{"a":[' + b",".join([b"{}"] * n) + b"]}}\n"

    over, within = line(5000), line(1000)
    for _ in range(1000):
        os.write(5, over)
    for _ in range(1000):
        os.write(5, within)
    return {"written": 2000}
