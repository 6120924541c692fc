# expect: blocked
import os
import stat
import subprocess
import tempfile


def run(ctx):
    ran = []
    try:
        subprocess.run(["/bin/sh", "-c", "true"], check=True)
        ran.append("/bin/sh")
    except OSError:
        pass
    path = os.path.join(tempfile.gettempdir(), "payload")
    with open(path, "w") as f:
        f.write("#!/usr/bin/python3\nprint('escaped')\n")
    try:
        os.chmod(path, stat.S_IRWXU)
    except OSError:  # no chmod where the job shares the worker's uid
        pass
    try:
        subprocess.run([path], check=True)
        ran.append(path)
    except OSError:
        pass
    return {"blocked": not ran, "detail": ran}
