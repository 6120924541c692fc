#!/usr/bin/python3
"""Runs the dashboard's browser test (dashboard.py) against a real stack.

Starts redis-server, ``stratq api`` with auth on (a tokens file, so the
dashboard's token prompt is exercised) and two workers from ``--bin``
(default build/stratq) with tests/chaos/stack.py's Stack, runs dashboard.py's
checks in Debian's headless Chromium (over the DevTools protocol, with
Debian's python3-websocket) against the API's URL and token, and stops every
process it started, the browser included, by pid. Exits non-zero if a check
fails, a daemon left processes behind, or a sanitizer reported anything.

    make browser-test            # installs chromium and python3-websocket if missing
    /usr/bin/python3 tests/browser/run.py --bin build/stratq --out docs/img
"""

import argparse
import os
import secrets
import signal
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests" / "chaos"))
from stack import Stack  # noqa: E402

import dashboard  # noqa: E402  (next to this file)


class Overtime(Exception):
    """The browser checks ran past --timeout (not a TimeoutError: the
    WebSocket client would take that for a read timeout)."""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=str(REPO / "build" / "stratq"))
    ap.add_argument("--out", default=str(REPO / "docs" / "img"), help="where the screenshots go")
    ap.add_argument("--chromium", default=os.environ.get("CHROMIUM", "/usr/bin/chromium"))
    ap.add_argument("--timeout", type=float, default=150, help="deadline for all the browser checks (s)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="stratq-browser-"))
    token = secrets.token_urlsafe(24)
    tokens = work / "tokens"
    tokens.write_text(f"# browser test\n{token}\n")
    tokens.chmod(0o600)
    stack = Stack(args.bin, work, api_env={"STRATQ_API_TOKENS_FILE": str(tokens)})
    rc = 1
    try:
        stack.start_redis()
        api = stack.start_api()
        stack.start_worker()
        stack.start_worker()
        print(f"browser test: API {api.url}, 2 workers, logs in {stack.logdir}", flush=True)

        def overtime(signum, frame):
            raise Overtime(f"the browser checks did not finish within {args.timeout:g} s")

        signal.signal(signal.SIGALRM, overtime)
        signal.setitimer(signal.ITIMER_REAL, args.timeout)
        try:
            rc = dashboard.run(api.url, token, Path(args.out).resolve(), REPO / "examples", args.chromium, work)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    finally:
        problems = stack.close() + stack.sanitizer_reports()
        for p in problems:
            print(f"browser test: {p}", file=sys.stderr)
        if problems:
            rc = rc or 1
        if rc:
            for proc in stack.procs:
                print(f"--- {proc.kind} pid {proc.pid} ({proc.log_path})\n{proc.tail(15)}", file=sys.stderr)
        if not args.keep and rc == 0:
            shutil.rmtree(work, ignore_errors=True)
    print("browser test: " + ("passed" if rc == 0 else f"FAILED ({rc})"), flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
