# expect: timeout
# timeout_s: 3
import signal
import time


def run(ctx):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(60)
