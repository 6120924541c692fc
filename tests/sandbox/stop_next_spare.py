# expect: succeeded
# Tries to stop the process the worker's next job will run in. A success is
# told before the job's process exits, and the executor may then fork the
# next job's spare while this job's processes are still being killed. This
# job leaves a process in a session of its own that, for two seconds, sends
# SIGSTOP to every pid just above its own that was not alive when it
# started (so none of the host's processes): the spare, forked within that
# window, is one of them. The executor only forks the spare so early where nothing of
# the job can signal it (a pid namespace of the job's own, or Landlock's
# signal scoping); the test then runs a normal job on the same worker,
# which a stopped spare would never start.
import os
import time


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def run(ctx):
    r, w = os.pipe()
    if os.fork() == 0:
        try:
            os.setsid()
            if os.fork() == 0:
                me = os.getpid()
                near = range(me + 1, me + 200)  # the spare's is higher: made later
                there = {p for p in near if alive(p)}
                os.write(w, b"1")
                # None of the job's pipes held open: the job's success is
                # then told before its process's exit.
                os.closerange(0, 1024)
                end = time.monotonic() + 2
                while time.monotonic() < end:
                    for p in near:
                        if p not in there:
                            try:
                                os.kill(p, 19)  # SIGSTOP
                            except OSError:
                                pass
        finally:
            os._exit(0)
    os.close(w)
    return {"started": os.read(r, 1) == b"1"}
