# expect: blocked
import glob
import os


def run(ctx):
    targets = ["/etc/shadow", "/etc/passwd", "/root/.bashrc", "/proc/1/environ",
               f"/proc/{os.getppid()}/environ", f"/proc/{os.getppid()}/mem",
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
