# expect: blocked
import errno
import os
import secrets
import tempfile

NAME = "d" * 20  # 21 bytes a level: 300 levels are 6300 bytes of path
DEPTH = 300


def run(ctx):
    # A tree deeper than PATH_MAX, built one level at a time by relative
    # paths, with a file at its bottom: the cleanup after the job must
    # remove it all the same, or a later job finds the file (test_sandbox's
    # check_deep_tree looks for it from a later job). It reports how deep
    # it got (path_bytes, the length of its deepest directory's path) and
    # why it stopped: in the always-on pass, where the executor removes
    # the tree by directory fds, the test wants it past PATH_MAX.
    tmp = tempfile.gettempdir()
    marker = secrets.token_hex(16)
    top = os.open(tmp, os.O_RDONLY | os.O_DIRECTORY)
    fd = top
    depth = 0
    deepest = None  # the deepest level that holds the file
    stopped = f"all {DEPTH} levels"
    for level in range(DEPTH + 1):
        # The file at every level: the deepest one the filesystem takes is
        # the one a later job looks for.
        try:
            out = os.open("secret.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
            os.write(out, marker.encode())
            os.close(out)
            deepest = level
        except OSError as e:
            if e.errno != errno.ENAMETOOLONG:
                raise
        if level == DEPTH:
            break
        try:
            os.mkdir(NAME, dir_fd=fd)
        except OSError as e:
            # Some filesystems (overlayfs, where the path must fit its
            # copy-up) refuse a tree this deep: it is as deep as it gets.
            if e.errno != errno.ENAMETOOLONG:
                raise
            stopped = f"ENAMETOOLONG making level {level + 1}"
            break
        sub = os.open(NAME, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        if fd != top:
            os.close(fd)
        fd = sub
        depth += 1
    # How deep it got: the bytes of the path of its deepest directory.
    path_bytes = len(os.fsencode(tmp)) + depth * (len(NAME) + 1)
    depth = deepest if deepest is not None else 0
    if fd != top:
        os.close(fd)
    os.close(top)
    return {"blocked": True, "detail": {"tmp": tmp, "name": NAME, "depth": depth, "marker": marker,
                                        "path_bytes": path_bytes, "stopped": stopped}}
