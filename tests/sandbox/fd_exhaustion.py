# expect: blocked
import os
import resource


def run(ctx):
    # Lift the soft limit as far as the hard one allows: only a hard limit
    # set by the sandbox can stop this.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    fds = []
    error = None
    try:
        while len(fds) < 5000:
            fds.append(os.open("/dev/null", os.O_RDONLY))
    except OSError as e:
        error = str(e)
    n = len(fds)
    for fd in fds:
        os.close(fd)
    return {"blocked": n < 2000, "detail": f"{n} fds, then {error}"}
