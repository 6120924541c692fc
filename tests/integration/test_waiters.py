"""?wait= on a job: what a long poll answers, whatever order its reads and
the job's terminal event come back in."""

import socket
import threading

from conftest import PREFIX, wait_for

SLEEPS = "import time\n\ndef run(ctx):\n    time.sleep(ctx.params['s'])\n    return 7\n"


class HoldingProxy:
    """A TCP proxy to Redis that can hold back what Redis answers on any
    connection that has sent a given string (the API's command connection,
    once it reads a given job), until released: a reply the API asked for
    then arrives after things that happened later (an event on its other
    connection, the answer to its next command)."""

    def __init__(self, port):
        self.port = port
        self.lock = threading.Lock()
        self.watch = None      # bytes: a connection that sends it is held
        self.sent = 0          # how many commands holding `watch` went up
        self.held = []         # (socket, data) not yet passed down
        self.holding = False
        self.srv = socket.create_server(("127.0.0.1", 0))
        self.url = f"redis://127.0.0.1:{self.srv.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.srv.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.port))
            state = {"watched": False}
            threading.Thread(target=self._up, args=(client, upstream, state), daemon=True).start()
            threading.Thread(target=self._down, args=(upstream, client, state), daemon=True).start()

    def _up(self, src, dst, state):
        while data := _recv(src):
            with self.lock:
                if self.watch and self.watch in data:
                    state["watched"] = True
                    self.sent += data.count(self.watch)
            dst.sendall(data)
        dst.close()

    def _down(self, src, dst, state):
        while data := _recv(src):
            with self.lock:
                if self.holding and state["watched"]:
                    self.held.append((dst, data))
                    continue
            dst.sendall(data)
        dst.close()

    def release(self):
        with self.lock:
            self.holding = False
            for dst, data in self.held:
                dst.sendall(data)
            self.held = []

    def close(self):
        self.srv.close()


def _recv(s):
    try:
        return s.recv(65536)
    except OSError:
        return b""


def test_a_wait_answers_the_read_made_after_the_jobs_end_not_one_made_before(stack, r):
    # GET ?wait= reads the job, and reads it again on its terminal event. A
    # read already under way when the event comes saw the job unfinished:
    # the API must answer from the read made after the event, whichever of
    # the two answers it handles first.
    proxy = HoldingProxy(stack.redis_server.port)
    try:
        api = stack.start_api_ready(["--redis-url", proxy.url]).client
        stack.start_worker()
        job_id = api.submit({"code": SLEEPS, "params": {"s": 1.5}})
        key = f"{PREFIX}:job:{job_id}"
        wait_for(lambda: r.hget(key, "status") == "running", 30, "the job to run")
        with proxy.lock:
            proxy.watch, proxy.holding = job_id.encode(), True
        answer = {}
        t = threading.Thread(target=lambda: answer.update(
            zip(("status", "body"), api.get(f"/v1/jobs/{job_id}?wait=30", timeout=40))))
        t.start()
        # The API's first read went up and Redis answered "running": held.
        wait_for(lambda: proxy.held, 10, "the API's first read of the job, answered and held")
        wait_for(lambda: r.hget(key, "status") == "succeeded", 30, "the job to succeed")
        # Its terminal event came on the other connection: the second read.
        wait_for(lambda: proxy.sent >= 2, 10, "the API to read the job again on its event")
        proxy.release()
        t.join(40)
        assert answer.get("status") == 200, answer
        assert answer["body"]["status"] == "succeeded" and answer["body"]["result"] == 7, answer
    finally:
        proxy.release()
        proxy.close()
