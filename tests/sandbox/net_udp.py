# expect: blocked
import socket


def run(ctx):
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.sendto(b"x", ("127.0.0.1", 53))
    except PermissionError as e:
        return {"blocked": True, "detail": str(e)}
    return {"blocked": False}
