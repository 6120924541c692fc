# expect: crashed
import os


def run(ctx):
    os.close(4)
    os._exit(0)
