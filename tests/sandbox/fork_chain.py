# expect: blocked
# A chain of processes, each in a session of its own, that grows a new
# level at the bottom as fast as it can while the executor kills it from
# the top: each level forks the next, waits for it, and forks again when
# it dies. Without a pid namespace or cgroup, killing the executor's
# children round by round ends one level per round while the bottom keeps
# adding levels (seen: 58 processes outliving the job, reading the next
# job's temporary files). The job returns once the chain is 20 levels
# deep; the test then checks that no process of it outlived the job (they
# carry proc_name) and that the next job runs undisturbed. Every level
# ends by itself after 60 s.
import ctypes
import os
import time


def run(ctx):
    name = ctx.params["proc_name"].encode()
    libc = ctypes.CDLL(None)
    deadline = time.monotonic() + 60
    r, w = os.pipe()
    depth = 0
    if os.fork() == 0:
        os.close(r)
        try:
            while time.monotonic() < deadline:
                try:
                    pid = os.fork()
                except OSError:  # RLIMIT_NPROC: try again
                    time.sleep(0.001)
                    continue
                if pid == 0:  # the next level
                    os.setsid()
                    libc.prctl(15, name, 0, 0, 0)  # PR_SET_NAME
                    depth += 1
                    if depth == 20:
                        os.write(w, b"1")
                    continue
                try:
                    os.waitpid(pid, 0)  # and fork again when it dies
                except ChildProcessError:
                    pass
        finally:
            os._exit(0)
    os.close(w)
    deep = os.read(r, 1) == b"1"
    return {"blocked": True, "detail": "20 levels deep" if deep else "never 20 levels deep"}
