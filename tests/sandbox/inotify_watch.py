# expect: blocked
# Watches host directories with inotify, which Landlock does not govern (it
# checks opening, not watching): the names made in the victim directory, the
# data directory and the worker's home would show. inotify_init (the old
# call, by number, as libc no longer uses it), inotify_init1 and
# inotify_add_watch on each must fail with EPERM (seccomp). inotify_add_watch
# is tried with the descriptor an init gave, or with -1 when none did: the
# filter refuses the call whatever its arguments.
import ctypes
import os
import platform

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
SYS_inotify_init = {"x86_64": 253}.get(platform.machine())  # none on arm64
IN_NONBLOCK, IN_CLOEXEC = 0o4000, 0o2000000
IN_ALL_EVENTS = 0xFFF


def outcome(rc):
    """'refused' for -1 with EPERM, else what the call did."""
    if rc == -1 and ctypes.get_errno() == 1:
        return "refused"
    return f"returned {rc}" + (f" (errno {ctypes.get_errno()})" if rc == -1 else "")


def call(fn, *args):
    ctypes.set_errno(0)
    return fn(*args)


def run(ctx):
    p = ctx.params
    checks, fds = {}, []
    inits = {"inotify_init1": lambda: call(libc.inotify_init1, IN_NONBLOCK | IN_CLOEXEC)}
    if SYS_inotify_init is not None:
        inits["inotify_init"] = lambda: call(libc.syscall, SYS_inotify_init)
    for name, init in inits.items():
        rc = init()
        checks[name] = outcome(rc)
        if rc >= 0:
            fds.append(rc)
    try:
        fd = fds[0] if fds else -1
        for what in ("victim_dir", "data_dir", "home"):
            path = os.fsencode(p[what])
            rc = call(libc.inotify_add_watch, fd, path, IN_ALL_EVENTS)
            checks[f"inotify_add_watch {what}"] = outcome(rc)
    finally:
        for fd in fds:
            os.close(fd)
    return {"blocked": all(v == "refused" for v in checks.values()), "detail": checks}
