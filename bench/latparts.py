"""Where one job's latency goes, stage by stage (issue 21): the system calls
of one warm worker's stack, recorded by `perf trace record` while no-op jobs
run one at a time on an idle queue (bench/exec.py), cut at landmarks along
each job's path.

A landmark is one system call of one process of this stack, known by pid
(other stacks may run on the machine: nothing is matched by name), at the
moment the call returned:

  sent           client      sendto on its HTTP socket: POST /v1/jobs?wait=30
  request        stratq api  readv on the client's socket: the request's last bytes
  enqueued       stratq api  writev on its Redis socket: EVALSHA, the enqueue
  taken          worker      read on its Redis socket: the BLMOVE reply
  start sent     worker      sendto: EVALSHA start.lua
  started        worker      read: start.lua's reply
  RUN sent       worker      writev on the executor's socket (fd 3): the RUN frame
  RUN read       executor    read on fd 3: the RUN frame
  handed         executor    writev on the job child's request pipe
  job read       job child   read: the request (as many bytes as were handed)
  outcome        job child   write on fd 4: the outcome
  frames         executor    writev on fd 3: the first outcome frame
  frames read    worker      read on fd 3: the last outcome frame (the
                             executor's last writev before it kills the child)
  complete sent  worker      sendto: EVALSHA complete.lua
  event          stratq api  readv on its subscriber socket: the job's event
  read sent      stratq api  writev: HGETALL of the job
  read           stratq api  readv: its reply
  response       stratq api  writev on the client's socket: the HTTP response
  received       client      recvfrom: the response

A stage is the time from one landmark to the next: what one process did
and the wake-up of the next, so the stages of one job add up to its whole
path. Two stages are split by when the receiving side was ready: the
executor reads the RUN frame only once it is done with the job before (the
child's exit, its clean-up, the next spare's fork: its first read of fd 3
after that job's outcome frames), and the spare reads its request only once
its own set-up after the fork is done (when its read began).

Between two jobs, from the executor's last outcome frame of the job before:
its fork (clone) of the next spare (while that job's child exits, where the
sandbox allows it, docs/architecture.md), its wait4 that reaps that job's
child, its readiness for the next RUN frame; in the spare, its seccomp filter (the
last step of its sandbox: prctl or seccomp) and its writes of "0" to the
job's cgroup.procs files.

Without perf (or without the right to trace) `cannot_trace` says why, and
there is no breakdown.
"""

import bisect
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
from collections import namedtuple

# The supervisor's socket in the executor (and the executor's in the
# supervisor); the job child writes its outcome on fd 4.
EXECUTOR_FD = 3
OUTCOME_FD = 4

Call = namedtuple("Call", "tid name fd ret start end args")  # start, end: µs
CALLS = frozenset({"read", "readv", "write", "writev", "sendto", "recvfrom", "kill", "wait4",
                   "clone", "clone3", "fork", "vfork", "prctl", "seccomp"})
FORKS = ("clone", "clone3", "fork", "vfork")
# Their numbers, to record only them (a kernel filter on raw_syscalls: less
# of the trace's cost on the job's path); elsewhere every call is recorded.
NUMBERS = {"x86_64": {"read": 0, "write": 1, "readv": 19, "writev": 20, "sendto": 44, "recvfrom": 45,
                      "clone": 56, "fork": 57, "vfork": 58, "wait4": 61, "kill": 62, "prctl": 157,
                      "seccomp": 317, "clone3": 435}}

# `perf trace -i` lines: a whole call, a call that other events
# interrupted ("... ") and its end ("... [continued]: name())").
LINE = re.compile(r"^\s*(?P<t>[\d.]+|\?) \(\s*(?:(?P<dur>[\d.]+) ms)?\s*\): "
                  r".*?/(?P<tid>\d+) (?P<rest>.*)$")
WHOLE = re.compile(r"^(?P<name>\w+)\((?P<args>.*)\)\s+= (?P<ret>-?\d+)")
ENTRY = re.compile(r"^(?P<name>\w+)\((?P<args>.*)\)\s+\.\.\.$")
CONTINUED = re.compile(r"^\s*\.\.\. \[continued\]: (?P<name>\w+)\(\)\)\s+= (?P<ret>-?\d+)")
FD = re.compile(r"(?:^|[ (,])fd: (\d+)")

# (from, to, stage) along one job's path.
STAGES = (
    ("sent", "request", "client -> API: HTTP request read"),
    ("request", "enqueued", "API: request parsed, EVALSHA enqueue sent"),
    ("enqueued", "taken", "Redis -> worker: BLMOVE reply read"),
    ("taken", "start sent", "worker: EVALSHA start.lua sent"),
    ("start sent", "started", "Redis: start.lua run, its reply read"),
    ("started", "RUN sent", "worker: RUN frame sent to the executor"),
    ("RUN sent", "RUN read", "executor: RUN frame read"),
    ("RUN read", "handed", "executor: request written to the job child"),
    ("handed", "job read", "job child: request read"),
    ("job read", "outcome", "job child: harness, strategy, outcome written"),
    ("outcome", "frames", "executor: outcome read, first frame sent"),
    ("frames", "frames read", "worker: outcome frames read"),
    ("frames read", "complete sent", "worker: EVALSHA complete.lua sent"),
    ("complete sent", "event", "Redis -> API: complete.lua run, job event read"),
    ("event", "read sent", "API: HGETALL of the job sent"),
    ("read sent", "read", "Redis: HGETALL reply read"),
    ("read", "response", "API: HTTP response sent"),
    ("response", "received", "API -> client: response read"),
)
# Stages split by when the receiving side was ready: stage's from ->
# (landmark of the side's readiness, label of the part before it).
SPLITS = {
    "RUN sent": ("executor ready", "of which the executor was not back yet (the job before)"),
    "handed": ("job ready", "of which the spare was not waiting yet (its set-up after the fork)"),
}
# The executor between two jobs, from its last outcome frame of the job before.
BETWEEN = (
    ("prev frames", "forked", "the next spare forked (beside the job's exit where it may be)"),
    ("prev frames", "reaped", "job child killed after its outcome, until reaped (its exit)"),
    ("reaped", "executor ready", "after the reap: clean-up, until ready for the next RUN frame"),
    ("prev frames", "RUN sent", "the next RUN frame sent (this bench's pace)"),
)
# The spare the executor forked there, until it waits for its request.
SPARE = (
    ("forked", "job ready", "the spare: from its fork until it waits for its request"),
    ("forked", "sandboxed", "  its sandbox, up to its seccomp filter"),
    ("forked", "cgroup joined", "    of which joining the job's cgroups (writes of cgroup.procs)"),
    ("sandboxed", "job ready", "  then the harness: fresh entropy, the rehearsal job, its read"),
)
# dequeue -> first line is timed from started_us, taken right after the
# BLMOVE reply: these stages cover it up to the job's request.
DEQUEUE = ("taken", "job read")


class Missing(Exception):
    """A landmark of a job is not in the recording."""


def cannot_trace(path):
    """Why `perf trace record` cannot run here (perf missing, or no right
    to trace system calls), or None. path: a scratch file."""
    if not shutil.which("perf"):
        return "perf is not installed"
    try:
        probe = subprocess.run(["perf", "trace", "record", "-o", path, "--", "true"],
                               capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"perf trace record did not run: {e}"
    if probe.returncode != 0:
        return f"perf trace record failed: {first_line(probe.stderr)}"
    return None


def first_line(text):
    return next((line.strip() for line in text.splitlines() if line.strip()), "no message")


def start(path, pids, log_path):
    """Starts `perf trace record` of pids, and of the children they fork
    from now on, into path; its output into log_path."""
    numbers = NUMBERS.get(platform.machine(), {})
    only = ["--filter", " || ".join(f"id == {numbers[c]}" for c in sorted(CALLS))] if numbers else []
    with open(log_path, "wb") as out:
        return subprocess.Popen(["perf", "trace", "record", "-o", path] + only
                                + ["-p", ",".join(map(str, pids))],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc):
    """Ends the recording (SIGINT, as perf expects) and waits for it;
    its exit status (0 when it ended well)."""
    try:
        os.killpg(proc.pid, signal.SIGINT)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return 0 if proc.returncode == -signal.SIGINT else proc.returncode


def calls(path):
    """The calls of interest (CALLS) in the recording at path, each with the
    time it returned, in that order; a call begun before the recording is
    left out."""
    text_path = path + ".txt"
    subprocess.run(["perf", "trace", "-i", path, "-o", text_path], capture_output=True, timeout=300,
                   check=True)
    found, begun = [], {}
    with open(text_path, errors="replace") as f:
        for line in f:
            m = LINE.match(line)
            if not m:
                continue
            tid, rest = int(m["tid"]), m["rest"]
            e = ENTRY.match(rest)
            if e:
                begun[tid] = (e["name"], e["args"])
                continue
            c = CONTINUED.match(rest)
            if c:
                name, args = begun.pop(tid, (None, ""))
                if name != c["name"]:
                    name, args = c["name"], ""
            elif (c := WHOLE.match(rest)):
                name, args = c["name"], c["args"]
            else:
                continue
            if name not in CALLS or m["t"] == "?" or m["dur"] is None:
                continue
            t = float(m["t"]) * 1000
            fd = FD.search(args)
            found.append(Call(tid, name, int(fd[1]) if fd else None, int(c["ret"]), t,
                              t + float(m["dur"]) * 1000, args))
    return sorted(found, key=lambda c: c.end)


class Timeline:
    """Some processes' calls, by the time each returned."""

    def __init__(self, calls):
        self.calls = calls
        self.ends = [c.end for c in calls]

    def first(self, after, want):
        """The first call that returned after `after` (µs) and is wanted."""
        for c in self.calls[bisect.bisect_right(self.ends, after):]:
            if want(c):
                return c
        raise Missing

    def last(self, before, want):
        """The last call that returned before `before` (µs) and is wanted."""
        for c in reversed(self.calls[:bisect.bisect_left(self.ends, before)]):
            if want(c):
                return c
        raise Missing


def moved(name, fd=None, not_fds=()):
    """Wants a call of name that moved data (on fd; on none of not_fds)."""
    return lambda c: (c.name == name and c.ret > 0 and (fd is None or c.fd == fd)
                      and c.fd not in not_fds)


def job_marks(t, sent, http_fd):
    """The landmarks of the job whose request the client sent with `sent`:
    {landmark: Call}. A search for what answers a call starts at that
    call's start: the answer may return before the call itself does.
    Raises Missing."""
    api, wk, ex, jobs = t["API"], t["worker"], t["executor"], t["jobs"]
    m = {"sent": sent}
    cfd = api.first(sent.start, moved("readv")).fd
    m["enqueued"] = api.first(sent.start, lambda c: c.name == "writev" and c.fd != cfd)
    rfd = m["enqueued"].fd
    m["request"] = api.last(m["enqueued"].end, moved("readv", cfd))
    # Back from the RUN frame (the worker writes fd 3 for nothing else): a
    # heartbeat's reply may come between the enqueue and the BLMOVE reply.
    m["RUN sent"] = wk.first(m["enqueued"].start, moved("writev", EXECUTOR_FD))
    m["started"] = wk.last(m["RUN sent"].end, moved("read", not_fds=(EXECUTOR_FD,)))
    wfd = m["started"].fd
    m["start sent"] = wk.last(m["started"].end, moved("sendto", wfd))
    m["taken"] = wk.last(m["start sent"].end, moved("read", wfd))
    m["RUN read"] = ex.first(m["RUN sent"].start, moved("read", EXECUTOR_FD))
    m["handed"] = ex.first(m["RUN read"].end, moved("writev", not_fds=(EXECUTOR_FD,)))
    handed = m["handed"].ret
    m["job read"] = jobs.first(m["handed"].start, lambda c: c.name == "read" and c.ret == handed)
    child = m["job read"].tid
    m["outcome"] = jobs.first(m["job read"].end,
                              lambda c: c.tid == child and moved("write", OUTCOME_FD)(c))
    m["frames"] = ex.first(m["outcome"].start, moved("writev", EXECUTOR_FD))
    killed = ex.first(m["frames"].end, lambda c: c.name == "kill")
    last_frame = ex.last(killed.end, moved("writev", EXECUTOR_FD))
    m["complete sent"] = wk.first(last_frame.start, moved("sendto", wfd))
    m["frames read"] = wk.last(m["complete sent"].end, moved("read", EXECUTOR_FD))
    m["response"] = api.first(m["complete sent"].start, moved("writev", cfd))
    m["read"] = api.last(m["response"].end, moved("readv", rfd))
    m["read sent"] = api.last(m["read"].end, moved("writev", rfd))
    m["event"] = api.last(m["read sent"].end, moved("readv", not_fds=(rfd, cfd)))
    if m["event"].end < m["complete sent"].start:
        raise Missing  # the event read was another's
    m["received"] = t["client"].first(m["response"].start, moved("recvfrom", http_fd))
    # When the job child was waiting for its request: since its read began
    # (if it began before the request was handed, it was waiting).
    m["job ready"] = m["job read"]
    # When the executor was back for the next frame: its first read of fd 3
    # after the job before's last outcome frame (a read that found nothing
    # yet, and then the poll for it, when it was back first).
    prev = ex.last(m["RUN read"].start, moved("writev", EXECUTOR_FD))
    m["executor ready"] = ex.first(prev.end, lambda c: c.name == "read" and c.fd == EXECUTOR_FD)
    try:
        m.update(between_marks(m, ex, jobs, prev, child))
    except Missing:
        pass  # no job before this one in the recording: no figures between
    return m


def between_marks(m, ex, jobs, prev, child):
    """The landmarks between the job before (its last outcome frame, prev)
    and this one: the executor's reaping of the job child before, its fork
    of this job's child (as a spare), the spare's sandbox, its cgroup join.
    Raises Missing."""
    # The fork comes before the reap where the spare is forked beside the
    # job's exit (executor.c, loop_handover), after it otherwise.
    reaped = ex.first(prev.end, lambda c: c.name == "wait4" and c.ret > 0 and c.ret != child)
    forked = ex.first(prev.end, lambda c: c.name in FORKS and c.ret > 0)
    if max(forked.end, reaped.end) > m["executor ready"].start or forked.ret != child:
        raise Missing
    # Its sandbox's last step: the seccomp filter.
    sandboxed = jobs.first(forked.end, lambda c: c.tid == child and (
        c.name == "seccomp" or c.name == "prctl" and "SECCOMP" in c.args))
    # Its only writes before it reads its request: "0" to the cgroup.procs
    # of each of the job's cgroups (cgroup_job_join).
    joins = [c for c in jobs.calls if c.tid == child and c.name == "write" and c.ret == 1
             and forked.end < c.start < m["job read"].start]
    joined = Call(child, "write", None, 0, forked.end,
                  forked.end + sum(c.end - c.start for c in joins), "")
    return {"prev frames": prev, "reaped": reaped, "forked": forked, "sandboxed": sandboxed,
            "cgroup joined": joined}


def stage_time(m, a, b):
    """µs from landmark a to landmark b; a "ready" landmark counts from its
    call's start."""
    return (m[b].start if b.endswith("ready") else m[b].end) - m[a].end


def waited(m, a, b):
    """Of the stage from a to b, how long b's side was not ready for it."""
    ready = SPLITS[a][0]
    return min(max(0.0, m[ready].start - m[a].end), stage_time(m, a, b))


def breakdown(path, roles, http_fd, groups):
    """The stages of the last jobs in the recording at path, in groups of
    the given sizes (the last group the last jobs): one result per group.
    roles: pid -> "client", "API", "worker" or "executor"; every child the
    executor forks in the recording is a job child. http_fd: the client's
    HTTP socket. A result: {"jobs": how many jobs had every landmark,
    "missing": how many did not, "index": the place of each of those in its
    group, "stages": [(label, [µs], whether a split of the stage before,
    whether within dequeue -> first line)], "between": [(label, [µs])],
    "total": [µs from sent to received, each job], "dequeue": [µs from
    taken to job read, each job]}."""
    found = calls(path)
    executor = next(p for p, r in roles.items() if r == "executor")
    role = dict(roles)
    for c in found:
        if c.tid == executor and c.name in FORKS and c.ret > 0:
            role[c.ret] = "job"
    t = {r: Timeline([c for c in found if role.get(c.tid) == r]) for r in ("API", "worker", "executor")}
    t["jobs"] = Timeline([c for c in found if role.get(c.tid) == "job"])
    t["client"] = Timeline([c for c in found if role.get(c.tid) == "client"])
    # Each request: the client's first send after its last answer.
    sends, answered = [], -1.0
    for c in t["client"].calls:
        if c.fd != http_fd or c.ret <= 0:
            continue
        if c.name == "sendto" and c.start > answered:
            sends.append(c)
            answered = float("inf")
        elif c.name == "recvfrom":
            answered = c.end
    results, end = [], len(sends)
    for n in reversed(groups):
        results.insert(0, group_stages(t, sends[max(0, end - n):end], http_fd))
        end -= n
    return results


def group_stages(t, sends, http_fd):
    """breakdown's result for the jobs of sends."""
    marks, index = [], []
    for i, sent in enumerate(sends):
        try:
            marks.append(job_marks(t, sent, http_fd))
            index.append(i)
        except Missing:
            pass
    missing = len(sends) - len(marks)
    # (label, [µs], whether a split, whether within dequeue -> first line)
    stages, within = [], False
    for a, b, label in STAGES:
        within = within or a == DEQUEUE[0]
        stages.append((label, [stage_time(m, a, b) for m in marks], False, within))
        if a in SPLITS:
            stages.append((SPLITS[a][1], [waited(m, a, b) for m in marks], True, within))
        within = within and b != DEQUEUE[1]
    between = [(label, [stage_time(m, a, b) for m in marks if "prev frames" in m])
               for a, b, label in BETWEEN + SPARE]
    return {"jobs": len(marks), "missing": missing, "index": index, "stages": stages,
            "between": between, "total": [stage_time(m, "sent", "received") for m in marks],
            "dequeue": [stage_time(m, *DEQUEUE) for m in marks]}


def p90(values):
    return statistics.quantiles(values, n=10)[-1] if len(values) > 1 else values[0]


def table(modes):
    """The breakdown as markdown: each stage's median, p90 and mean in µs,
    the stages' sum against the whole measured of the same jobs, then the
    executor and the spare between two jobs. modes: [(title, b)], b what
    breakdown returns, with, for each of its jobs, "s2r": submit -> result
    and "d2f": dequeue -> first line as measured (µs), and "s2r_plain":
    submit -> result of as many jobs just before, untraced."""
    med, mean = statistics.median, statistics.fmean

    def cells(v):
        return f"{med(v):.0f} | {p90(v):.0f} | {mean(v):.0f}" if v else "- | - | -"

    def summed(b, within=False):
        vs = [v for _, v, split, w in b["stages"] if not split and (w or not within)]
        return sum(med(v) for v in vs), sum(mean(v) for v in vs)

    def short(measured, stages):
        return "{:.0f} | | {:.0f}".format(med(measured) - stages[0], mean(measured) - stages[1])

    def outside(measured, traced):
        return cells([a - b for a, b in zip(measured, traced)])

    def lines(head, rows):
        out = [f"| {head} | " + " | ".join(f"{t}: median | p90 | mean" for t, _ in modes) + " |",
               "|---|" + "---:|---:|---:|" * len(modes)]
        out += [f"| {label} | " + " | ".join(fn(b) for _, b in modes) + " |" for label, fn in rows]
        return "\n".join(out)

    indent = "&nbsp;&nbsp;"
    stages = [(indent * split + label, lambda b, i=i: cells(b["stages"][i][1]))
              for i, (label, _, split, _) in enumerate(modes[0][1]["stages"])]
    sums = [
        ("**sum of the stages** (medians, means)",
         lambda b: "**{:.0f}** | | **{:.0f}**".format(*summed(b))),
        ("submit -> result measured by the client, the same jobs", lambda b: cells(b["s2r"])),
        ("unaccounted: measured - sum of the stages", lambda b: short(b["s2r"], summed(b))),
        (indent + "of which, each job: the client before its send and after its receive",
         lambda b: outside(b["s2r"], b["total"])),
        ("submit -> result untraced, the same worker just before", lambda b: cells(b["s2r_plain"])),
        ("dequeue -> first line: the stages from 'worker: EVALSHA start.lua sent' to 'job child: "
         "request read'", lambda b: "{:.0f} | | {:.0f}".format(*summed(b, within=True))),
        ("dequeue -> first line measured (the job's clock - started_us), the same jobs",
         lambda b: cells(b["d2f"])),
        ("unaccounted: measured - those stages", lambda b: short(b["d2f"], summed(b, within=True))),
        (indent + "of which, each job: in the job child, from its read to the strategy's first line",
         lambda b: outside(b["d2f"], b["dequeue"])),
    ]
    between = [(label.replace("  ", indent), lambda b, i=i: cells(b["between"][i][1]))
               for i, (label, _) in enumerate(modes[0][1]["between"])]
    return (lines("stage (µs)", stages + sums) + "\n\n"
            + lines("between two jobs, from the executor's last outcome frame (µs)", between))


if __name__ == "__main__":
    import exec as bench_exec  # the benchmark's stack: its redis-server, stratq api, the worker

    sys.exit(bench_exec.main(only_breakdown=True))
