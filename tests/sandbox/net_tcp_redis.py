# expect: blocked
import socket


def run(ctx):
    try:
        s = socket.create_connection(("127.0.0.1", int(ctx.params.get("port", 6379))), timeout=2)
    except PermissionError as e:
        return {"blocked": True, "detail": str(e)}
    s.close()
    return {"blocked": False}
