"""`stratq monitor` (--once, --json, the full-screen view under a
pseudo-terminal) and the progress bar of `submit --wait` / `result --wait`.

The monitor's numbers are checked against the API. Its run and wait times
come from the histograms of GET /v1/queue: the percentiles are checked
against an estimate made here independently, as Prometheus'
histogram_quantile() makes it, and against the bounds of the bucket that
jobs of known run times fall in."""

import fcntl
import json
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


def histogram_quantile(q, h):
    """Prometheus' estimate of the q-quantile of a GET /v1/queue histogram
    (le_ms, cumulative counts, count): linear within the bucket that holds
    rank q * count, the highest finite bound when it is the +Inf one; None
    when empty."""
    if not h["count"]:
        return None
    rank = q * h["count"]
    for i, (le, n) in enumerate(zip(h["le_ms"], h["counts"])):
        if n >= rank:
            lo, below = (h["le_ms"][i - 1], h["counts"][i - 1]) if i else (0, 0)
            return lo + (le - lo) * (rank - below) / (n - below)
    return h["le_ms"][-1]


def histograms(api):
    return api.queue()["histograms"]


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
    ids = [api.submit({"code": SLEEPER, "params": {"s": s}}) for s in (1.2, 1.2, 1.3, 1.4)]
    ids += [api.submit({"code": FAILING}) for _ in range(2)]
    for i in ids:
        api.wait_job(i)
    # The workers count a job once it is recorded, and add its times to the
    # histograms with a heartbeat; wait until both cover every job.
    wait_for(
        lambda: sum(int(w["jobs_done"]) + int(w["jobs_failed"]) for w in api.get("/v1/workers")[1]["workers"])
        == len(ids),
        30,
        "the workers' counters to cover every job",
    )
    wait_for(lambda: [h["count"] for h in histograms(api).values()] == [len(ids)] * 2, 30,
             lambda: f"the histograms to cover every job: {histograms(api)}")
    hist = histograms(api)
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
    assert sum(w["jobs_done"] for w in rep["workers"]["list"]) == 4
    assert sum(w["jobs_failed"] for w in rep["workers"]["list"]) == 2

    # One report: over everything the histograms hold, every run (the two
    # failures too) and every start.
    jobs = rep["jobs"]
    assert jobs["over"] == "since stats began" and jobs["window_s"] is None, jobs
    for key, h in (("run_ms", hist["run"]), ("wait_ms", hist["wait"])):
        got = jobs[key]
        assert got["count"] == h["count"] == 6, (key, got, h)
        for q, p in ((0.5, "p50"), (0.95, "p95")):
            assert abs(got[p] - histogram_quantile(q, h)) <= 0.5 + 1e-9, (key, p, got, h)
        assert abs(got["mean"] - h["sum_ms"] / h["count"]) <= 0.5 + 1e-9, (key, got, h)
        assert got["p50"] <= got["p95"], (key, got)
    # The sleepers ran 1.2 to 1.4 s, in (1000, 2500] ms; the failures in
    # less. Ranks 3 and 5.7 of 6 fall among the sleepers: both estimates lie
    # in their bucket.
    run = hist["run"]
    below, within = run["counts"][run["le_ms"].index(1000)], run["counts"][run["le_ms"].index(2500)]
    assert (below, within) == (2, 6), f"runs outside the buckets this test expects: {run}"
    assert 1000 < jobs["run_ms"]["p50"] < jobs["run_ms"]["p95"] <= 2500, jobs
    assert 1200 * 4 / 6 < jobs["run_ms"]["mean"] < 2500, jobs
    # Everything finished within the last minute.
    assert rep["throughput"] == {"window_s": 60, "per_min": 6, "succeeded": 4, "failed": 2, "capped": False}

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
    assert re.search(r"^throughput\s+6/min", res.stdout, re.M), describe_run(res)
    assert re.search(r"^run time\s+p50 1\.\ds\s+p95 [12]\.\ds\s+mean \S+\s+\(6 finished, since stats began\)$",
                     res.stdout, re.M), describe_run(res)
    assert re.search(r"^wait time\s+p50 \S+\s+p95 \S+\s+mean \S+\s+\(6 started, since stats began\)$",
                     res.stdout, re.M), describe_run(res)
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
    # No job has run: the histograms are empty, their estimates null.
    empty = {"count": 0, "p50": None, "p95": None, "mean": None}
    assert rep["jobs"] == {"over": "since stats began", "window_s": None, "run_ms": empty, "wait_ms": empty}, rep

    res = run_cli(["monitor", "--once"], api_proc.url, env={"LC_ALL": "C", "LANG": "C"})
    assert res.returncode == 0, describe_run(res)
    assert advice_line(res.stdout).startswith("advice      scale up to 2 workers"), describe_run(res)
    assert "run time    p50 -        p95 -        mean -        (0 finished, since stats began)" in res.stdout, \
        describe_run(res)
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


def stop(proc):
    """Stops a monitor started with Popen (SIGTERM, as a person would,
    then SIGKILL after 20 s); returns its stderr, checked for sanitizer
    reports."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    err = err.decode(errors="replace")
    assert not sanitizer_findings(err), err
    return err


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
    finally:
        err = stop(proc)
    assert proc.returncode == 0, err


def test_monitor_refreshes_follow_the_event_stream(stack):
    """A refreshed monitor counts the jobs that finish while it runs from
    the API's job events (GET /v1/events): its last report agrees with a
    one-shot report, which reads the listings. Its run and wait times are
    of the jobs since it started; the one-shot report's of all of them."""
    api_proc = stack.start_api()
    stack.start_worker()
    api = api_proc.client
    api.wait_job(api.submit({"code": SLEEPER}))
    wait_for(lambda: [h["count"] for h in histograms(api).values()] == [1, 1], 30,
             lambda: f"the first job in the histograms: {histograms(api)}")
    env = dict(os.environ, STRATQ_API_URL=api_proc.url, LANG="C.UTF-8")
    proc = subprocess.Popen([str(STRATQ_BIN), "monitor"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, env=env)
    buf = b""

    def last_report():
        nonlocal buf
        while True:
            r, _, _ = select.select([proc.stdout], [], [], 0.05)
            if not r:
                break
            data = os.read(proc.stdout.fileno(), 65536)
            if not data:
                break
            buf += data
        done = [x for x in buf.decode(errors="replace").split("\n\n") if "\nadvice" in x]
        return done[-1] if done else ""

    try:
        wait_for(lambda: "advice" in last_report(), 20, "the first report")
        assert "(0 finished, since the monitor started)" in last_report(), last_report()
        assert "(0 started, since the monitor started)" in last_report(), last_report()
        ids = [api.submit({"code": SLEEPER, "params": {"s": s}}) for s in (0, 0.2)]
        ids.append(api.submit({"code": FAILING}))
        for i in ids:
            api.wait_job(i)
        wait_for(lambda: "(3 succeeded, 1 failed in the last 60 s)" in last_report()
                 and "(3 finished, since the monitor started)" in last_report()
                 and "(3 started, since the monitor started)" in last_report(), 30,
                 lambda: f"the finished jobs counted: {last_report()}")
        rep = monitor_json(api_proc.url)
        assert rep["throughput"]["per_min"] == 4, rep
        assert rep["jobs"]["run_ms"]["count"] == rep["jobs"]["wait_ms"]["count"] == 4, rep
        assert re.search(r"^throughput\s+4/min", last_report(), re.M), last_report()
    finally:
        err = stop(proc)
    assert proc.returncode == 0, err


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
