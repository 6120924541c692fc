# expect: blocked
# Changes host files' metadata, which Landlock does not govern (it checks
# opening): chmod, chown, times and extended attributes by path, on the
# test's victim file and directory, the data file and the worker's home.
# Also through a descriptor opened read-only (fchmod, fchown, futimens,
# fsetxattr need only ownership). Where the job shares the worker's uid
# (always-on, userns) these are its own files, so only seccomp refuses;
# where it has a uid of its own (root) they are not its, and it may still
# fchmod its own temporary file. The test checks the victims' modes and
# times afterwards too.
import os
import tempfile

XATTR = "user.stratq_attack"


def run(ctx):
    p = ctx.params
    targets = [p["victim_file"], p["victim_dir"], p["data_file"], p["home"]]
    changed = {}
    for path in targets:
        for name, fn in (("chmod", lambda: os.chmod(path, 0o777)),
                         ("chmod nofollow", lambda: os.chmod(path, 0o777, follow_symlinks=False)),
                         ("chown", lambda: os.chown(path, os.getuid(), os.getgid())),
                         ("lchown", lambda: os.lchown(path, os.getuid(), os.getgid())),
                         ("utime", lambda: os.utime(path, (0, 0))),
                         ("utime nofollow", lambda: os.utime(path, (0, 0), follow_symlinks=False)),
                         ("setxattr", lambda: os.setxattr(path, XATTR, b"x")),
                         ("removexattr", lambda: os.removexattr(path, "user.none"))):
            try:
                fn()
                changed[f"{name} {path}"] = "done"
            except OSError as e:
                if name == "removexattr" and e.errno == 61:  # ENODATA: it ran
                    changed[f"{name} {path}"] = "ran"
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            for name, fn in (("fchmod", lambda: os.chmod(fd, 0o777)),
                             ("fchown", lambda: os.chown(fd, os.getuid(), os.getgid())),
                             ("futimens", lambda: os.utime(fd, (0, 0))),
                             ("fsetxattr", lambda: os.setxattr(fd, XATTR, b"x"))):
                try:
                    fn()
                    changed[f"{name} {path}"] = "done"
                except OSError:
                    pass
        finally:
            os.close(fd)
    # Its own temporary file, where it has a uid of its own.
    fd, _ = tempfile.mkstemp()
    try:
        os.fchmod(fd, 0o640)
        own = oct(os.fstat(fd).st_mode & 0o777)
    except OSError:
        own = None
    finally:
        os.close(fd)
    try:
        shared_uid = os.getuid() == os.stat(ctx.params["victim_file"]).st_uid
    except OSError:  # (a uid of its own may not even reach it)
        shared_uid = False
    return {"blocked": not changed and (shared_uid or own == "0o640"), "detail": changed, "own": own}
