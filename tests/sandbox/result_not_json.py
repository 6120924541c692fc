# expect: failed
def run(ctx):
    return {1, 2, 3}
