# expect: blocked
# Signals the worker's processes: the supervisor and the executor by the host
# pids the test passes, the job's parent (unless it is 0 or 1), the
# executor's process group, and every process (-1). Each target is probed
# with signal 0 first; SIGKILL follows only a refused probe, so a hole shows
# as "blocked": false instead of killing the worker (or, as root, the host).
# Never kill(0) or the job's own group.
import os
import signal


def attempt(send):
    """'refused: ...' if both the probe and SIGKILL raised OSError, else
    what went through."""
    try:
        send(0)
    except OSError as e:
        probe = f"{type(e).__name__} {e.errno}"
    else:
        return "signal 0 delivered"
    try:
        send(signal.SIGKILL)
    except OSError as e:
        return f"refused: {probe}, then {type(e).__name__} {e.errno}"
    return "SIGKILL delivered"


def run(ctx):
    p = ctx.params
    targets = {"supervisor": p["supervisor_pid"], "executor": p["executor_pid"]}
    ppid = os.getppid()
    if ppid not in (0, 1):
        targets["parent"] = ppid
    out = {}
    for what, pid in targets.items():
        if pid > 1 and pid != os.getpid():
            out[f"kill {what} {pid}"] = attempt(lambda sig, pid=pid: os.kill(pid, sig))

    def group(sig):
        pgid = os.getpgid(p["executor_pid"])  # fails where the executor is not visible
        if pgid <= 1 or pgid == os.getpgrp():
            raise ProcessLookupError(3, f"not a group to try: {pgid}")
        os.killpg(pgid, sig)

    out["killpg of the executor's group"] = attempt(group)
    out["kill -1"] = attempt(lambda sig: os.kill(-1, sig))
    return {"blocked": all(v.startswith("refused") for v in out.values()), "detail": out}
