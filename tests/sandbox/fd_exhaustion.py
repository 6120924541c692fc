# expect: blocked
import os


def run(ctx):
    fds = []
    try:
        while True:
            fds.append(os.open("/dev/null", os.O_RDONLY))
    except OSError as e:
        n = len(fds)
        for fd in fds:
            os.close(fd)
        return {"blocked": n < 2000, "detail": f"{n} fds then {e}"}
