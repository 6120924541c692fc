# expect: blocked
import os
import secrets
import tempfile

NAME = "d" * 20  # 21 bytes a level: 300 levels are 6300 bytes of path
DEPTH = 300


def run(ctx):
    # A tree deeper than PATH_MAX, built one level at a time by relative
    # paths, with a file at its bottom: the cleanup after the job must
    # remove it all the same, or a later job finds the file (test_sandbox's
    # check_deep_tree looks for it from a later job).
    tmp = tempfile.gettempdir()
    marker = secrets.token_hex(16)
    top = os.open(tmp, os.O_RDONLY | os.O_DIRECTORY)
    fd = top
    for _ in range(DEPTH):
        os.mkdir(NAME, dir_fd=fd)
        sub = os.open(NAME, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        if fd != top:
            os.close(fd)
        fd = sub
    out = os.open("secret.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
    os.write(out, marker.encode())
    os.close(out)
    os.close(fd)
    os.close(top)
    return {"blocked": True, "detail": {"tmp": tmp, "name": NAME, "depth": DEPTH, "marker": marker}}
