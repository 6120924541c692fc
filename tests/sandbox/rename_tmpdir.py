# expect: blocked
import os
import tempfile


def run(ctx):
    # The job moves its own directory away (where its uid may: the
    # executor's work directory, when the job runs as the executor's uid),
    # leaves a link to a host directory under the old name and a file beside
    # it: the cleanup must remove what the job wrote, wherever it went, and
    # follow no link.
    tmp = tempfile.gettempdir()
    parent = os.path.dirname(tmp)
    with open(os.path.join(tmp, "kept.txt"), "w") as f:
        f.write("left by the job")
    done = []
    for what, act in (
        ("rename", lambda: os.rename(tmp, os.path.join(parent, "moved"))),
        ("symlink", lambda: os.symlink(ctx.params["victim_dir"], tmp)),
        ("file", lambda: open(os.path.join(parent, "planted.txt"), "w").write("planted")),
    ):
        try:
            act()
            done.append(what)
        except OSError:
            pass
    return {"blocked": True, "detail": done}
