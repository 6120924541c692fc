# expect: blocked
import os
import tempfile


def run(ctx):
    # Directories the job's own uid cannot enter or write (000, 0500), each
    # holding a file, one inside the other: the cleanup after the job must
    # remove them all the same.
    tmp = tempfile.gettempdir()
    for name, mode in (("locked", 0o000), ("readonly", 0o500)):
        path = os.path.join(tmp, name)
        os.makedirs(os.path.join(path, "inner"))
        for d in (path, os.path.join(path, "inner")):
            with open(os.path.join(d, "kept.txt"), "w") as f:
                f.write("left by the job")
        try:
            os.chmod(os.path.join(path, "inner"), mode)
            os.chmod(path, mode)
        except OSError:  # no chmod where the job shares the worker's uid
            return {"blocked": True, "detail": "chmod refused"}
    return {"blocked": True, "detail": tmp}
