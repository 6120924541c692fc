# expect: timeout
import signal
import time


def run(ctx):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(60)
