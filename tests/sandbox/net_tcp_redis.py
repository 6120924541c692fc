# expect: blocked
# TCP to Redis and to the API at the hosts and ports the test passes
# (loopback by default; the services' addresses in a Compose network), and
# to the worker's health port on loopback when the test passes one.
import socket


def run(ctx):
    p = ctx.params
    targets = {"redis": (p.get("host", "127.0.0.1"), p.get("port", 6379)),
               "api": (p.get("api_host", "127.0.0.1"), p.get("api_port", 8080))}
    if "health_port" in p:
        targets["health"] = ("127.0.0.1", p["health_port"])
    results = {}
    for what, (host, port) in targets.items():
        try:
            s = socket.create_connection((host, int(port)), timeout=2)
        except PermissionError as e:
            results[what] = f"refused: {e}"
            continue
        except OSError as e:
            results[what] = f"not refused by the sandbox: {e}"
            continue
        s.close()
        results[what] = "connected"
    return {"blocked": all(v.startswith("refused") for v in results.values()), "detail": results}
