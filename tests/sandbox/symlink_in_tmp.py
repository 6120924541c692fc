# expect: blocked
import os
import tempfile


def run(ctx):
    # Plant links to a host file and a host directory: cleanup of the job's
    # temp dir must remove the links, not what they point at.
    tmp = tempfile.gettempdir()
    os.symlink(ctx.params["victim_file"], os.path.join(tmp, "victim-link"))
    os.symlink(ctx.params["victim_dir"], os.path.join(tmp, "victim-dir-link"))
    try:
        open(os.path.join(tmp, "victim-link")).read()
        followed = True
    except OSError:
        followed = False
    return {"blocked": not followed, "detail": tmp}
