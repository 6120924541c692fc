# expect: succeeded
# multiprocessing works in a job: a 2-process Pool maps a function. The job
# also leaves a POSIX shared memory segment (params shm_name) behind on
# purpose, never unlinked; the test checks that /dev/shm/<shm_name> does not
# exist on the host after the job: nothing a job creates outlives it.
# Without the mount namespace (always-on) a job has no /dev/shm at all, so
# neither works: the job says so ("unavailable"), and the test checks that
# this happens exactly where the worker reports no mountns layer.
import multiprocessing
from multiprocessing import resource_tracker, shared_memory


def square(x):
    return x * x


def run(ctx):
    try:
        with multiprocessing.get_context("fork").Pool(2) as pool:
            squares = pool.map(square, range(10))
    except OSError as e:
        return {"squares": f"unavailable: {e}", "shm": None}
    # Python 3.11 registers each segment with multiprocessing's resource
    # tracker, a process it execs from sys.executable: warm mode executes
    # nothing, and the registration then races with that process's failure
    # (BrokenPipeError, or death by SIGPIPE). Create the segment untracked,
    # as Python 3.13's track=False does: then the tracker cannot remove it
    # either, only the sandbox can.
    register = resource_tracker.register
    resource_tracker.register = lambda name, rtype: None
    try:
        shm = shared_memory.SharedMemory(create=True, size=4096, name=ctx.params["shm_name"])
    finally:
        resource_tracker.register = register
    shm.buf[:5] = b"left!"
    shm.close()
    return {"squares": squares, "shm": shm.name}
