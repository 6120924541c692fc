# expect: blocked
# TCP to Redis and to the API on loopback (the ports the test passes).
import socket


def run(ctx):
    results = {}
    for what, port in (("redis", ctx.params.get("port", 6379)), ("api", ctx.params.get("api_port", 8080))):
        try:
            s = socket.create_connection(("127.0.0.1", int(port)), timeout=2)
        except PermissionError as e:
            results[what] = f"refused: {e}"
            continue
        except OSError as e:
            results[what] = f"not refused by the sandbox: {e}"
            continue
        s.close()
        results[what] = "connected"
    return {"blocked": all(v.startswith("refused") for v in results.values()), "detail": results}
