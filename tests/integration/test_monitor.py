"""`stratq monitor` (--once, --json, the full-screen view under a
pseudo-terminal) and the progress bar of `submit --wait` / `result --wait`.

The monitor's numbers are checked against the API, with the percentiles
computed here independently (nearest-rank over the last 100 succeeded jobs,
wait = started - created, run = finished - started)."""

import fcntl
import json
import math
import os
import re
import select
import signal
import struct
import subprocess
import termios
import textwrap
import time

import pytest

from conftest import STRATQ_BIN, describe_run, free_port, require_binary, run_cli, sanitizer_findings, wait_for

SLEEPER = textwrap.dedent(
    """
    import time

    def run(ctx):
        time.sleep(ctx.params.get("s", 0))
        return ctx.params.get("s", 0)
    """
)
FAILING = "def run(ctx):\n    raise ValueError('no edge today')\n"
PROGRESS = textwrap.dedent(
    """
    import time

    def run(ctx):
        ctx.progress(0.5, "half")
        time.sleep(3)
        return "done"
    """
)

ALT_ON = b"\x1b[?1049h"
ALT_OFF = b"\x1b[?1049l"
HOME = b"\x1b[H"
BLOCKS = "▁▂▃▄▅▆▇█"


def monitor_json(api_url, *extra):
    res = run_cli(["monitor", "--json", *extra], api_url, env={"LANG": "C.UTF-8"})
    assert res.returncode == 0, describe_run(res)
    try:
        return json.loads(res.stdout)
    except ValueError as e:
        raise AssertionError(f"stdout is not one JSON object ({e})\n{describe_run(res)}") from None


def nearest_rank(values, p):
    values = sorted(values)
    return values[max(math.ceil(p / 100 * len(values)) - 1, 0)]


def advice_line(text):
    lines = [l for l in text.splitlines() if l.startswith("advice")]
    assert len(lines) == 1, text
    return lines[0]


@pytest.fixture
def two_workers(stack):
    api_proc = stack.start_api()
    stack.start_workers(2)
    return api_proc


def test_monitor_numbers_match_the_api(two_workers, stack):
    api = two_workers.client
    ids = [api.submit({"code": SLEEPER, "params": {"s": s}}) for s in (0, 0.1, 0.2, 0.3, 0.5)]
    ids += [api.submit({"code": FAILING}) for _ in range(2)]
    for i in ids:
        api.wait_job(i)
    # The workers count a job once it is recorded; wait until both agree.
    wait_for(
        lambda: sum(int(w["jobs_done"]) + int(w["jobs_failed"]) for w in api.get("/v1/workers")[1]["workers"])
        == len(ids),
        30,
        "the workers' counters to cover every job",
    )
    rep = monitor_json(two_workers.url)

    queue = api.queue()
    for k in ("pending", "processing", "scheduled", "dead"):
        assert rep["queue"][k] == queue[k], (k, rep["queue"], queue)

    _, workers = api.get("/v1/workers")
    by_id = {w["id"]: w for w in workers["workers"]}
    assert rep["workers"]["count"] == 2 == len(by_id)
    assert {w["id"] for w in rep["workers"]["list"]} == set(by_id)
    assert rep["workers"]["by_state"] == {"idle": 2}, rep["workers"]
    for w in rep["workers"]["list"]:
        api_w = by_id[w["id"]]
        assert w["state"] == api_w["state"] == "idle"
        assert w["jobs_done"] == int(api_w["jobs_done"]) and w["jobs_failed"] == int(api_w["jobs_failed"])
        assert w["current_job"] is None
        # Workers of this machine: RSS from /proc.
        assert isinstance(w["rss_bytes"], int) and w["rss_bytes"] > 1024 * 1024, w
        assert w["heartbeat_age_ms"] is not None and w["heartbeat_age_ms"] < 60000
    assert sum(w["jobs_done"] for w in rep["workers"]["list"]) == 5
    assert sum(w["jobs_failed"] for w in rep["workers"]["list"]) == 2

    _, listing = api.get("/v1/jobs?status=succeeded&limit=100")
    done = [j for j in listing["jobs"] if None not in (j["created_ms"], j["started_ms"], j["finished_ms"])]
    assert len(done) == 5
    waits = [j["started_ms"] - j["created_ms"] for j in done]
    runs = [j["finished_ms"] - j["started_ms"] for j in done]
    assert rep["jobs"]["sample"] == 5
    assert rep["jobs"]["wait_ms"]["p50"] == nearest_rank(waits, 50)
    assert rep["jobs"]["wait_ms"]["p95"] == nearest_rank(waits, 95)
    assert rep["jobs"]["run_ms"]["p50"] == nearest_rank(runs, 50)
    assert rep["jobs"]["run_ms"]["p95"] == nearest_rank(runs, 95)
    assert rep["jobs"]["run_ms"]["p95"] >= 500  # the 0.5 s job
    # Everything finished within the last minute.
    assert rep["throughput"] == {"window_s": 60, "per_min": 7, "succeeded": 5, "failed": 2, "capped": False}

    # An empty queue and idle workers: the guide would scale down, but 2 is
    # its minimum.
    adv = rep["advice"]
    assert adv["wanted"] == "scale_down" and adv["action"] == "hold", adv
    assert adv["utilisation_percent"] == 0
    assert adv["suggested_workers"] == 2

    res = run_cli(["monitor", "--once"], two_workers.url, env={"LANG": "C.UTF-8"})
    assert res.returncode == 0, describe_run(res)
    assert ALT_ON.decode() not in res.stdout and "\x1b" not in res.stdout, describe_run(res)
    for w in by_id:
        assert w in res.stdout, describe_run(res)
    assert re.search(r"^queue\s+0\s", res.stdout, re.M), describe_run(res)
    assert re.search(r"^throughput\s+7/min", res.stdout, re.M), describe_run(res)
    line = advice_line(res.stdout)
    assert "scale up" not in line and line.split()[1] == "hold", line
    assert "minimum of 2 workers" in res.stdout


def test_monitor_long_queue_advises_scale_up(stack):
    api_proc = stack.start_api()
    api = api_proc.client
    for _ in range(8):
        api.submit({"code": SLEEPER})
    rep = monitor_json(api_proc.url)
    assert rep["queue"]["pending"] == api.queue()["pending"] == 8
    assert rep["workers"]["count"] == 0 and rep["workers"]["list"] == []
    assert rep["advice"]["action"] == "scale_up", rep["advice"]
    assert any("queue length 8 > 5" in r for r in rep["advice"]["reasons"]), rep["advice"]
    assert rep["advice"]["suggested_workers"] == 2

    res = run_cli(["monitor", "--once"], api_proc.url, env={"LC_ALL": "C", "LANG": "C"})
    assert res.returncode == 0, describe_run(res)
    assert advice_line(res.stdout).startswith("advice      scale up to 2 workers"), describe_run(res)
    # Not a UTF-8 locale: the sparkline is ASCII.
    spark = [l for l in res.stdout.splitlines() if l.startswith("queue")][0]
    assert not any(b in spark for b in BLOCKS) and "#" in spark, spark

    # Queue cleared: no more scale-up advice.
    stack.r.delete("python_execution_queue")
    rep = monitor_json(api_proc.url)
    assert rep["queue"]["pending"] == 0
    assert rep["advice"]["action"] == "hold" and rep["advice"]["wanted"] != "scale_up", rep["advice"]


def test_monitor_api_unreachable(tmp_path):
    res = run_cli(["monitor", "--once"], f"http://127.0.0.1:{free_port()}")
    assert res.returncode == 3, describe_run(res)
    assert "STRATQ_API_URL" in res.stderr and res.stdout == "", describe_run(res)
    res = run_cli(["monitor", "extra"], "http://127.0.0.1:1")
    assert res.returncode == 2, describe_run(res)


# --------------------------------------------------------------------------
# Under a pseudo-terminal
# --------------------------------------------------------------------------


class Pty:
    """``stratq ARGS`` with stdin, stdout and stderr on a pseudo-terminal of
    40 rows by 160 columns; collects everything it writes."""

    def __init__(self, args, api_url, env=None):
        require_binary()
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
        full_env = dict(os.environ, STRATQ_API_URL=api_url, LANG="C.UTF-8", TERM="xterm")
        full_env.pop("LC_ALL", None)
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [str(STRATQ_BIN), *map(str, args)],
            stdin=slave, stdout=slave, stderr=slave, env=full_env, start_new_session=True,
        )
        os.close(slave)
        self.out = b""

    def pump(self, timeout=0.05):
        r, _, _ = select.select([self.master], [], [], timeout)
        if r:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: the other side is closed
                data = b""
            self.out += data
            return bool(data)
        return False

    def wait_output(self, pred, timeout, what):
        def check():
            self.pump()
            return pred(self.out)

        return wait_for(check, timeout, lambda: f"{what}; output so far: {self.out[-3000:]!r}", interval=0)

    def finish(self, timeout=30):
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self.pump()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"stratq did not exit; output: {self.out[-3000:]!r}")
        while self.pump(0.05):
            pass
        os.close(self.master)
        text = self.out.decode(errors="replace")
        assert not sanitizer_findings(text), text
        return self.proc.returncode

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        try:
            os.close(self.master)
        except OSError:
            pass


def test_monitor_full_screen_under_a_terminal(stack):
    api_proc = stack.start_api()
    stack.start_worker()
    api_proc.client.submit({"code": SLEEPER})
    t = Pty(["monitor"], api_proc.url)
    try:
        # Two frames: the alternate screen, then a redraw a second later.
        t.wait_output(lambda o: ALT_ON in o and o.count(HOME) >= 2 and b"advice" in o.split(HOME)[-1], 20,
                      "two frames of the monitor")
        t.proc.send_signal(signal.SIGINT)
        rc = t.finish()
    finally:
        t.close()
    assert rc == 0, t.out[-2000:]
    out = t.out
    assert out.index(ALT_ON) < out.rindex(HOME) < out.rindex(ALT_OFF), out[-2000:]
    assert out.rstrip().endswith(ALT_OFF) or out.rindex(ALT_OFF) > out.rindex(b"advice"), out[-500:]
    assert b"\x1b[?25h" in out[out.rindex(HOME):], "the cursor is shown again"
    frame = out[out.rindex(HOME):out.rindex(ALT_OFF)].decode()
    spark = re.search(r"queue\s+\d+\s+([%s ]+)\s*\(10 min" % BLOCKS, frame)
    assert spark and any(b in spark.group(1) for b in BLOCKS), frame
    assert re.search(r"^\s*ID\s+HOST\s+STATE\s+JOB\s+ELAPSED\s+DONE\s+FAILED\s+RSS\s+HEARTBEAT", frame, re.M), frame


def test_monitor_plain_text_every_second_without_a_terminal(stack):
    api_proc = stack.start_api()
    env = dict(os.environ, STRATQ_API_URL=api_proc.url)
    proc = subprocess.Popen([str(STRATQ_BIN), "monitor"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, env=env)
    try:
        buf = b""
        deadline = time.monotonic() + 20
        while buf.count(b"\nadvice") + buf.startswith(b"advice") < 2 and time.monotonic() < deadline:
            r, _, _ = select.select([proc.stdout], [], [], 0.2)
            if r:
                buf += os.read(proc.stdout.fileno(), 65536)
        assert buf.count(b"advice") >= 2, buf
        assert b"\x1b" not in buf, buf
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert not sanitizer_findings(err.decode(errors="replace")), err


JOB_LINE = re.compile(rb"job ([A-Za-z0-9_-]+): running, [0-9.]+ s \[#{10}-{10}\] 50% half")


@pytest.mark.parametrize("command", ["submit", "result"])
def test_wait_shows_a_progress_bar(stack, tmp_path, command):
    api_proc = stack.start_api()
    stack.start_worker()
    api = api_proc.client
    if command == "submit":
        path = tmp_path / "progress.py"
        path.write_text(PROGRESS)
        args = ["submit", path, "--wait"]
    else:
        job_id = api.submit({"code": PROGRESS})
        args = ["result", job_id, "--wait"]
    t = Pty(args, api_proc.url)
    try:
        m = t.wait_output(lambda o: JOB_LINE.search(o), 30, "the progress bar at 50% with 'half'")
        # The bar came while the job still ran (it sleeps 3 s after the progress).
        assert api.job(m.group(1).decode())["status"] == "running"
        rc = t.finish()
    finally:
        t.close()
    assert rc == 0, t.out[-2000:]
    assert b"done" in t.out[t.out.rindex(b"\r\x1b[K"):], t.out[-2000:]

    # Without a terminal there is no bar: the output stays parseable.
    res = run_cli(args, api_proc.url)
    assert res.returncode == 0, describe_run(res)
    assert "[#" not in res.stdout + res.stderr and "\r" not in res.stderr, describe_run(res)
