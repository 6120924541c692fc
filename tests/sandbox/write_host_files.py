# expect: blocked
import os
import stratq


def run(ctx):
    harness = os.path.dirname(stratq.__file__)
    targets = ["/tmp/stratq-attack.txt", "/root/stratq-attack.txt",
               "/usr/lib/python3/dist-packages/stratq_attack.py",
               os.path.join(harness, "evil.py"), "/etc/stratq-attack"]
    written = []
    for path in targets:
        try:
            with open(path, "w") as f:
                f.write("x")
            written.append(path)
            os.unlink(path)
        except OSError:
            pass
    return {"blocked": not written, "detail": written}
