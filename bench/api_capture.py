"""Helper of scripts/bench-api.sh: turns what `redis-cli MONITOR` saw while
the API handled one POST /v1/jobs into the redis-benchmark command that
replays the same enqueue (same script, keys and arguments) with a fresh id
per call (__rand_int__).

usage: api_capture.py MONITOR_FILE JOB_ID SCRIPT_OUT
Prints, shell-quoted, the redis-benchmark command arguments; writes the
script body to SCRIPT_OUT when the API used EVAL (so that the caller can
SCRIPT LOAD it). Exits 1 when no EVAL/EVALSHA naming JOB_ID was seen.
On stderr: the commands the API sent for that submit.
"""

import re
import shlex
import sys

TOKEN = re.compile(r'"((?:\\.|[^"\\])*)"')
ESC = {"n": "\n", "r": "\r", "t": "\t", "a": "\a", "b": "\b", '"': '"', "\\": "\\"}


def unrepr(s):
    """Inverse of Redis's sdscatrepr (MONITOR's quoting)."""
    out, i = bytearray(), 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            n = s[i + 1]
            if n == "x" and i + 3 < len(s):
                out.append(int(s[i + 2:i + 4], 16))
                i += 4
                continue
            out += ESC.get(n, n).encode()
            i += 2
            continue
        out += c.encode("utf-8", "surrogateescape")
        i += 1
    return out.decode("utf-8", "surrogateescape")


def main():
    path, job_id, script_out = sys.argv[1:4]
    seen, hit = [], None
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            _, sep, rest = line.partition("] ")
            if not sep:
                continue
            args = [unrepr(t) for t in TOKEN.findall(rest)]
            if not args:
                continue
            seen.append(args[0].upper())
            if hit is None and args[0].upper() in ("EVAL", "EVALSHA") and any(
                    job_id in a for a in args[3:]):
                hit = args
    print("bench-api: Redis commands seen around one submit: " + " ".join(seen[:12]),
          file=sys.stderr)
    if hit is None:
        return 1
    cmd, script = hit[0].upper(), hit[1]
    if cmd == "EVAL":
        with open(script_out, "w", encoding="utf-8") as f:
            f.write(script)
        script = "@SHA@"  # the caller substitutes the loaded sha
    rest = [a.replace(job_id, "__rand_int__") for a in hit[2:]]
    print(" ".join(shlex.quote(a) for a in ["EVALSHA", script] + rest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
