# expect: timeout
# timeout_s: 3
# One thread reaches the wall-clock timeout before its CPU-time limit (set just above it).
def run(ctx):
    while True:
        pass
