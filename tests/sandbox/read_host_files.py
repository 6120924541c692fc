# expect: blocked
# Host files and other processes' /proc entries (the worker's own are tried
# by read_secrets.py, by the host pids the test passes).
import glob


def run(ctx):
    targets = ["/etc/shadow", "/etc/passwd", "/root/.bashrc", "/proc/1/environ",
               "/proc/self/environ"] + glob.glob("/proc/[0-9]*/cmdline")[:20]
    opened = []
    for path in targets:
        try:
            with open(path, "rb") as f:
                f.read(1)
            opened.append(path)
        except OSError:
            pass
    return {"blocked": not opened, "detail": opened}
