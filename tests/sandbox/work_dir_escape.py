# expect: blocked
# The executor's work directory holds the job's own directory (its cwd and
# TMPDIR) and, with a uid of its own, the executor's copy of the harness.
# The job may use its own directory only: it lists the work directory (what
# other jobs of the executor left or hold), makes a file and a directory
# there, moves its own directory out of the cleanup's way (rename into the
# work directory, or a hard link of a file there), and writes to the
# harness's copy. The test checks the work directory unchanged afterwards.
import os
import tempfile


def run(ctx):
    own = tempfile.gettempdir()
    work = os.path.dirname(own)
    done = {}
    attempts = {
        "list": lambda: os.listdir(work),
        "create file": lambda: open(os.path.join(work, "planted.txt"), "w").close(),
        "mkdir": lambda: os.mkdir(os.path.join(work, "planted")),
        "rename own dir": lambda: os.rename(own, os.path.join(work, "job-moved")),
        "link": lambda: os.link(os.path.join(own, "f"), os.path.join(work, "f-linked")),
        "symlink": lambda: os.symlink("/", os.path.join(work, "root-link")),
        "write sdk": lambda: open(os.path.join(work, "sdk", "stratq", "evil.py"), "w").close(),
    }
    open(os.path.join(own, "f"), "w").close()
    for name, fn in attempts.items():
        try:
            done[name] = repr(fn())[:200]
        except OSError:
            pass
    # Its own directory it may use.
    os.mkdir(os.path.join(own, "mine"))
    with open(os.path.join(own, "mine", "ok.txt"), "w") as f:
        f.write("ok")
    return {"blocked": not done, "detail": done}
