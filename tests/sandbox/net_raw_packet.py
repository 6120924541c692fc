# expect: blocked
import socket


def run(ctx):
    results = []
    for fam, typ in ((socket.AF_INET, socket.SOCK_RAW), (socket.AF_PACKET, socket.SOCK_RAW),
                     (socket.AF_INET6, socket.SOCK_STREAM), (socket.AF_NETLINK, socket.SOCK_RAW)):
        try:
            socket.socket(fam, typ).close()
            results.append(False)
        except PermissionError:
            results.append(True)
    return {"blocked": all(results), "detail": results}
