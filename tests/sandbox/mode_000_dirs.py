# expect: blocked
import os
import stat
import tempfile


def run(ctx):
    # Directories the job's own uid cannot enter, read or write, holding
    # files: the cleanup after the job must remove them all the same (the
    # executor gives each u+rwx before it enters it).
    tmp = tempfile.gettempdir()
    detail = {"tmp": tmp}
    # First with no chmod at all, which is refused where the job shares the
    # worker's uid: mkdir's mode alone. A 0300 directory (write and search,
    # not read) takes files and directories it cannot list: a file, a 0300
    # directory holding a file, and a mode 000 one; and beside it an empty
    # mode 000 directory.
    blind = os.path.join(tmp, "blind")
    os.mkdir(blind, 0o300)
    os.mkdir(os.path.join(blind, "nested"), 0o300)
    os.mkdir(os.path.join(blind, "locked"), 0)
    for d in (blind, os.path.join(blind, "nested")):
        with open(os.path.join(d, "kept.txt"), "w") as f:
            f.write("left by the job")
    os.mkdir(os.path.join(tmp, "empty_000"), 0)
    # The modes the directories got (the umask may take bits off, never add).
    detail["made"] = {
        rel: stat.S_IMODE(os.stat(os.path.join(tmp, rel)).st_mode)
        for rel in ("blind", "blind/nested", "blind/locked", "empty_000")}
    # Then 000 and 0500 by chmod, once the directories hold their files.
    for name, mode in (("locked", 0o000), ("readonly", 0o500)):
        path = os.path.join(tmp, name)
        os.makedirs(os.path.join(path, "inner"))
        for d in (path, os.path.join(path, "inner")):
            with open(os.path.join(d, "kept.txt"), "w") as f:
                f.write("left by the job")
        try:
            os.chmod(os.path.join(path, "inner"), mode)
            os.chmod(path, mode)
            detail[name] = "chmod done"
        except OSError as e:  # no chmod where the job shares the worker's uid
            detail[name] = f"chmod refused: {e}"
    return {"blocked": True, "detail": detail}
