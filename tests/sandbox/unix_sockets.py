# expect: blocked
# Reaches pathname UNIX sockets of the host, which Landlock (up to ABI 7)
# has no right for: the test's own 0777 stream and datagram sockets (params
# unix_socket, unix_dgram; the test checks that neither saw a connection or
# a datagram), and the usual ones (docker.sock, dbus, syslog's /dev/log, the
# journal). Every route is tried: connect() on stream, seqpacket and
# datagram sockets, sendto() and sendmsg() with an address on an unbound
# datagram socket, and sendto() from one end of a datagram socketpair.
import os
import socket

WELL_KNOWN = ["/var/run/docker.sock", "/run/docker.sock", "/run/dbus/system_bus_socket",
              "/dev/log", "/run/systemd/journal/socket", "/run/systemd/private",
              "/var/run/redis/redis-server.sock", "/tmp/redis.sock"]


def attempt(fn):
    try:
        return fn()
    except OSError as e:
        return f"refused: {e.strerror}"


def run(ctx):
    p = ctx.params
    stream = [p[k] for k in ("unix_socket",) if p.get(k)] + WELL_KNOWN
    dgram = [p[k] for k in ("unix_dgram",) if p.get(k)] + ["/dev/log", "/run/systemd/journal/socket"]
    reached = {}

    def connect(kind, path):
        def go():
            s = socket.socket(socket.AF_UNIX, kind)
            s.settimeout(2)
            try:
                s.connect(path)
                s.sendall(b"PING\r\n")
                return s.recv(100).decode(errors="replace") or "connected"
            finally:
                s.close()
        return go

    for path in stream:
        if not os.path.exists(path) and path not in (p.get("unix_socket"),):
            continue
        for kind in (socket.SOCK_STREAM, socket.SOCK_SEQPACKET, socket.SOCK_DGRAM):
            out = attempt(connect(kind, path))
            if not out.startswith("refused"):
                reached[f"connect {kind.name} {path}"] = out

    def send_to(path, how):
        def go():
            s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                if how == "sendto":
                    s.sendto(b"<13>stratq attack", path)
                else:
                    s.sendmsg([b"<13>stratq attack"], [], 0, path)
                return "sent"
            finally:
                s.close()
        return go

    def pair_send(path):
        def go():
            a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                a.sendto(b"<13>stratq attack", path)
                return "sent"
            finally:
                a.close()
                b.close()
        return go

    for path in dgram:
        if not os.path.exists(path) and path != p.get("unix_dgram"):
            continue
        for how in ("sendto", "sendmsg"):
            out = attempt(send_to(path, how))
            if not out.startswith("refused"):
                reached[f"{how} {path}"] = out
        out = attempt(pair_send(path))
        if not out.startswith("refused"):
            reached[f"socketpair sendto {path}"] = out
    return {"blocked": not reached, "detail": reached}
