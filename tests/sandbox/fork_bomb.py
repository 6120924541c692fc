# expect: blocked
# Forks children that sleep until fork fails or 3,000 of them run: only a
# limit on the number of processes (the per-job cgroup's pids.max) stops it
# before the job's timeout. Each child takes the name the test gave
# (proc_name), so the test can find leftovers from outside; a child never
# returns into the parent's code (os._exit, whatever happens).
import ctypes
import os
import time

LIMIT = 3000
libc = ctypes.CDLL(None)


def run(ctx):
    name = ctx.params["proc_name"].encode()
    n, error = 0, None
    while n < LIMIT:
        try:
            pid = os.fork()
        except OSError as e:
            error = str(e)
            break
        if pid == 0:
            try:
                libc.prctl(15, name, 0, 0, 0)  # PR_SET_NAME
                time.sleep(60)
            finally:
                os._exit(0)
        n += 1
    return {"blocked": n < LIMIT, "detail": f"{n} children, then {error}"}
