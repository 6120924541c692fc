# expect: blocked
# Runs programs without execute permission on them: through the ELF loader
# (ld.so /bin/sh, which Landlock must let execute since it loads the
# interpreter), from a memfd (memfd_create + execveat), and a binary the
# job wrote. No job execs anything: a warm job is a fork of the executor's
# interpreter and seccomp refuses execve and execveat there; a cold job's
# interpreter is itself exec'd after the executor's filter is in place, so
# the harness adds a second filter that refuses them before the job's code
# runs (python/stratq/_noexec.py).
import os
import shutil
import subprocess
import tempfile

LOADER = "/lib64/ld-linux-x86-64.so.2"


def spawn(argv, exe=None):
    """What running argv gave: 'ran', or why it did not."""
    try:
        r = subprocess.run(argv, executable=exe, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=2)
    except (OSError, subprocess.SubprocessError) as e:
        return f"refused: {type(e).__name__} {getattr(e, 'errno', '')}"
    return "ran" if r.returncode == 0 else f"refused: exit {r.returncode}"


def from_fd(fd):
    """Runs the program open as fd (fexecve: execveat AT_EMPTY_PATH) in a
    child that ends whatever happens."""
    pid = os.fork()
    if pid == 0:
        try:
            os.execve(fd, ["true"], {})
        except OSError as e:
            os._exit(100 + min(e.errno, 50))
        os._exit(99)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return "ran" if code == 0 else f"refused: exit {code}"


def run(ctx):
    out = {}
    if os.path.exists(LOADER):
        out["ld.so /bin/sh"] = spawn([LOADER, "/bin/sh", "-c", "exit 0"])
        out["ld.so /bin/true"] = spawn([LOADER, "/bin/true"])
    with open("/bin/true", "rb") as f:
        image = f.read()
    try:
        mfd = os.memfd_create("payload", 0)
    except OSError as e:
        out["memfd execveat"] = f"refused: memfd_create {e.errno}"
    else:
        os.write(mfd, image)
        out["memfd execveat"] = from_fd(mfd)
        os.close(mfd)
    path = os.path.join(tempfile.gettempdir(), "payload-true")
    with open(path, "wb") as f:
        f.write(image)
    try:
        os.chmod(path, 0o700)
    except OSError:  # no chmod where the job shares the worker's uid
        pass
    out["written binary"] = spawn([path])
    out["written binary by the loader"] = spawn([LOADER, path])
    out["python3"] = spawn([shutil.which("python3") or "/usr/bin/python3", "-c", "pass"])
    ran = [k for k, v in out.items() if not v.startswith("refused")]
    return {"blocked": not ran, "detail": out}
