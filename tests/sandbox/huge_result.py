# expect: output_exceeded
def run(ctx):
    return "x" * (64 * 1024 * 1024)
