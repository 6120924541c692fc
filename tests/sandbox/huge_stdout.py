# expect: output_exceeded
def run(ctx):
    while True:
        print("x" * 65536)
