# expect: succeeded
# timeout_s: 60
# 100,000 progress updates, each with a message of its own of 999
# characters (ctx.progress keeps 1,000), so that every one is sent: 100 MB
# through the events fd. The executor keeps only the latest (test_sandbox's
# check_progress_spam: the job's progress is the last update, and the
# executor's peak RSS grew by far less than what was sent). About 4 s on a
# loaded 2-core machine: a long timeout, so that a slow run is no failure.
UPDATES = 100_000
PAD = "p" * 990


def run(ctx):
    for i in range(1, UPDATES + 1):
        ctx.progress(i / UPDATES, f"{i:09d}{PAD}")
    return {"updates": UPDATES, "last": f"{UPDATES:09d}"}
