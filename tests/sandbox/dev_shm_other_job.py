# expect: blocked
# Another job's POSIX shared memory: the test leaves a segment in the
# host's /dev/shm as a job of another worker of the same uid would
# (params victim_shm, a psm_* name, owned by the worker's uid, holding
# "other job's data"). The job lists /dev/shm, reads the segment, writes
# it, truncates it and deletes it. Each job sees a /dev/shm of its own (the
# mount namespace) or none at all; the test checks the segment unchanged.
import mmap
import os


def run(ctx):
    path = os.path.join("/dev/shm", ctx.params["victim_shm"])
    reached = {}
    try:
        names = os.listdir("/dev/shm")
        if ctx.params["victim_shm"] in names:
            reached["listed"] = True
    except OSError:
        pass
    for name, fn in (("read", lambda: open(path, "rb").read()),
                     ("mmap", lambda: mmap.mmap(os.open(path, os.O_RDWR), 0)[:16]),
                     ("write", lambda: open(path, "r+b").write(b"overwritten")),
                     ("truncate", lambda: os.truncate(path, 0)),
                     ("unlink", lambda: os.unlink(path))):
        try:
            reached[name] = repr(fn())
        except OSError:
            pass
    return {"blocked": not reached, "detail": reached}
