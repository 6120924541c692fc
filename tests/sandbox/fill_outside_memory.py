# expect: output_exceeded
# Memory and disk that no address-space limit sees: a memfd, files in
# /dev/shm, and files in the job's own directory (the pod's /tmp emptyDir,
# often memory-backed). memfd_create is refused everywhere. With the mount
# namespace the job's /dev/shm is a tmpfs of its memory limit (memory_mb,
# 512 MiB; each file stops at STRATQ_JOB_MAX_TMP, 128 MiB in the test, by
# RLIMIT_FSIZE) and its directory one of STRATQ_JOB_MAX_TMP; without one
# there is no /dev/shm for the job, and the executor counts its directory
# while it runs. What the first two gave goes to stderr as a JSON line (the
# test checks it); then the job writes 16 MiB files into its directory, a
# little apart, until something stops it: output_exceeded (TmpExceeded),
# from the full tmpfs or from the executor's count.
import json
import os
import sys
import tempfile
import time

CHUNK = b"x" * (16 << 20)


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
    out = {"own tmpfs": os.stat(tmp).st_dev != os.stat(os.path.dirname(tmp)).st_dev}
    out["shm"] = fill(f"/dev/shm/{ctx.params['shm_name']}", 2 << 30)
    try:
        os.memfd_create("hold", 0)
        out["memfd"] = "made"
    except OSError as e:
        out["memfd"] = f"refused: {e.errno}"
    print(json.dumps(out), file=sys.stderr, flush=True)
    for i in range(64):  # 1 GiB, over 3 s: more than the test's timeout
        with open(os.path.join(tmp, f"fill-{i}"), "wb") as f:
            f.write(CHUNK)
        time.sleep(0.05)
    return {"escaped": "1 GiB written"}
