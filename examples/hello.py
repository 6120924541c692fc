"""The smallest stratq strategy: no imports, no data.

    stratq submit examples/hello.py --params '{"name": "desk"}' --wait
"""


def run(ctx):
    name = (ctx.params or {}).get("name", "world")
    return {"greeting": f"hello {name}"}
