# expect: blocked
# Writes outside the job's own directory: /tmp, the home directory of the
# test (or of the worker, when it runs as another user), site-packages, the
# harness, /etc, the data directory and its CSV (data_file), and the test's
# victim file and directory.
# Existing files are opened for appending (the test then checks them
# unchanged); new files are created and removed again.
import os
import stratq


def run(ctx):
    p = ctx.params
    harness = os.path.dirname(stratq.__file__)
    new = ["/tmp/stratq-attack.txt", "/root/stratq-attack.txt",
           os.path.join(p["home"], "stratq-attack.txt"),
           "/usr/lib/python3/dist-packages/stratq_attack.py",
           os.path.join(p["site_packages"], "stratq_attack.py"),
           os.path.join(harness, "evil.py"), os.path.join(p["harness_dir"], "evil.py"),
           os.path.join(p["data_dir"], "stratq-attack.csv"),
           os.path.join(p["victim_dir"], "stratq-attack.txt"), "/etc/stratq-attack"]
    existing = [p["data_file"], p["victim_file"]]
    written = []
    for path in new:
        try:
            with open(path, "w") as f:
                f.write("x")
            written.append(path)
            os.unlink(path)
        except OSError:
            pass
    for path in existing:
        try:
            with open(path, "a") as f:
                f.write("x")
            written.append(path)
        except OSError:
            pass
    return {"blocked": not written, "detail": written}
