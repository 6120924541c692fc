# expect: blocked
# Memory and disk that no address-space limit sees: files in the job's own
# directory (the pod's /tmp emptyDir, often memory-backed), files in
# /dev/shm, and a memfd. With the mount namespace the job's directory is a
# tmpfs of STRATQ_JOB_MAX_TMP bytes (128 MiB in the test) and its /dev/shm
# one of its memory limit (memory_mb, 512 MiB): writes stop there. Without
# one there is no /dev/shm for the job, and each file stops at
# STRATQ_JOB_MAX_TMP (RLIMIT_FSIZE). memfd_create is refused everywhere.
import os
import tempfile

CHUNK = b"x" * (16 << 20)
MAX_TMP = 128 << 20


def fill(path, limit):
    """Bytes written to path before a write failed (or limit was reached)."""
    n = 0
    try:
        with open(path, "wb", buffering=0) as f:
            while n < limit:
                n += f.write(CHUNK)
    except OSError:
        pass
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass
    return n


def run(ctx):
    tmp = tempfile.gettempdir()
    own_fs = os.stat(tmp).st_dev != os.stat(os.path.dirname(tmp)).st_dev
    out = {"own tmpfs": own_fs}
    if own_fs:  # files together, in one directory tree
        total = 0
        for i in range(32):
            n = fill(os.path.join(tmp, f"fill-{i}"), 1 << 30)
            total += n
            if n < (1 << 30):
                break
        out["tmp"] = total
    else:  # one file, as far as it goes
        out["tmp"] = fill(os.path.join(tmp, "fill"), 1 << 30)
    out["shm"] = fill(f"/dev/shm/{ctx.params['shm_name']}", 2 << 30)
    try:
        os.memfd_create("hold", 0)
        out["memfd"] = "made"
    except OSError as e:
        out["memfd"] = f"refused: {e.errno}"
    ok = out["tmp"] <= MAX_TMP and out["shm"] <= 512 << 20 and out["memfd"].startswith("refused")
    return {"blocked": ok, "detail": out}
