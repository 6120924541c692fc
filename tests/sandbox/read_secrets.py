# expect: blocked
# Looks for the worker's secrets: the API tokens file, the Redis config (with
# its password), the environment and memory of the supervisor and executor
# (by the host pids the test passes), its own environment in /proc, and the
# file descriptors it inherited. Returns everything it could read; blocked
# means no file could be read and no socket is open. The test also checks
# that neither secret appears anywhere in the job's record and that
# STRATQ_REDIS_URL is not in the job's environment.
import os
import stat


def read(path):
    with open(path, "rb") as f:
        return f.read(65536).decode(errors="replace")


def run(ctx):
    p = ctx.params
    sup, ex = p["supervisor_pid"], p["executor_pid"]
    files = [p["tokens_file"], p["config_file"], f"/proc/{sup}/environ", f"/proc/{sup}/cmdline",
             f"/proc/{ex}/environ", "/proc/self/environ"]
    read_ok, refused = {}, {}
    for path in files:
        try:
            read_ok[path] = read(path)
        except OSError as e:
            refused[path] = f"{type(e).__name__} {e.errno}"
    # /proc/PID/mem: opening it is the permission check (a read at offset 0
    # fails anyway: nothing is mapped there).
    for pid in (sup, ex):
        path = f"/proc/{pid}/mem"
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as e:
            refused[path] = f"{type(e).__name__} {e.errno}"
        else:
            os.close(fd)
            read_ok[path] = "opened"
    fds = {}
    for fd in range(1024):
        try:
            mode = os.fstat(fd).st_mode
        except OSError:
            continue
        fds[fd] = ("socket" if stat.S_ISSOCK(mode) else "pipe" if stat.S_ISFIFO(mode)
                   else "file" if stat.S_ISREG(mode) else "dir" if stat.S_ISDIR(mode)
                   else "char" if stat.S_ISCHR(mode) else oct(stat.S_IFMT(mode)))
    sockets = [fd for fd, kind in fds.items() if kind == "socket"]
    return {"blocked": not read_ok and not sockets,
            "detail": {"read": read_ok, "refused": refused, "fds": fds, "environ": dict(os.environ)}}
