"""Where a job's CPU goes: a whole-system profile (`perf record -a -g`) of a
throughput phase, split into the parts issue 21 names (bench/exec.py).

Each sample of the cpu-clock event stands for 1/FREQ s of one CPU's time;
its process (by pid: the benchmark knows which pid is which) and its call
stack give its part:

  kernel: fork        the executor's fork of each job child (kernel_clone)
  kernel: exit        a job process's exit, its address space torn down
  kernel: page faults copy-on-write and file page faults, executor or job
  sandbox set-up      the job's sandbox system calls (Landlock, seccomp,
                      mount, cgroup directories, credentials, rlimits,
                      namespaces), executor or job
  job: Python         the rest of a job process: the harness, the
                      interpreter's at-fork hooks, the strategy, its result
  executor: other     the rest of the executor
  worker              the supervisor (`stratq worker`)
  API                 `stratq api`
  Redis               redis-server
  benchmark client    the benchmark itself
  other               anything else on the machine

Idle time is not counted. Without perf (or without the right to profile
the whole system) `start` returns None and there is no breakdown.
"""

import os
import shutil
import signal
import subprocess
from collections import Counter

FREQ = 997

PARTS = ("kernel: fork", "kernel: exit", "kernel: page faults", "sandbox set-up",
         "job: Python", "executor: other", "worker", "API", "Redis", "benchmark client", "other")

FORK = ("kernel_clone", "copy_process")
EXIT = ("do_exit", "do_group_exit", "exit_mmap")
FAULT = ("exc_page_fault", "asm_exc_page_fault")
SANDBOX = ("landlock", "seccomp", "__x64_sys_mount", "__x64_sys_umount", "__x64_sys_unshare",
           "__x64_sys_setns", "__x64_sys_setres", "__x64_sys_setgroups", "__x64_sys_prlimit64",
           "__x64_sys_setrlimit", "__x64_sys_capset", "__x64_sys_mkdir", "__x64_sys_rmdir",
           "cgroup_")


def start(path):
    """Starts `perf record -a -g` into path; the Popen, or None when perf
    is missing or may not profile the whole system."""
    if not shutil.which("perf"):
        return None
    try:
        probe = subprocess.run(["perf", "record", "-a", "-o", "/dev/null", "--", "true"],
                               capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if probe.returncode != 0:
        return None
    return subprocess.Popen(["perf", "record", "-a", "-g", "-F", str(FREQ), "-o", path],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def stop(proc):
    """Ends the recording (SIGINT, as perf expects) and waits for it."""
    if proc is None:
        return
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _part(role, stack):
    if role in ("worker", "API", "Redis", "benchmark client"):
        return role
    if role not in ("executor", "job"):
        return "other"
    if any(s.startswith(FORK) for s in stack):
        return "kernel: fork"
    if any(s.startswith(EXIT) for s in stack):
        return "kernel: exit"
    if any(s.startswith(FAULT) for s in stack):
        return "kernel: page faults"
    if any(any(k in s for k in SANDBOX) for s in stack):
        return "sandbox set-up"
    return "job: Python" if role == "job" else "executor: other"


def breakdown(path, roles, job_comm="stratq-executor"):
    """{part: CPU seconds} from the recording at path. roles: pid -> one of
    "worker", "executor", "API", "Redis", "benchmark client"; a process of
    job_comm not named there is a job."""
    out = subprocess.run(["perf", "script", "-i", path, "-F", "comm,pid,ip,sym"],
                         capture_output=True, text=True, timeout=600).stdout
    seconds = Counter()
    for block in out.split("\n\n"):
        lines = block.strip("\n").split("\n")
        if not lines or not lines[0].strip():
            continue
        head = lines[0].split()
        try:
            pid = int(head[-1])
        except (ValueError, IndexError):
            continue
        if pid == 0:
            continue  # idle
        comm = " ".join(head[:-1])
        role = roles.get(pid) or ("job" if comm == job_comm else "other")
        stack = [ln.split()[-1] for ln in lines[1:] if ln.strip()]
        seconds[_part(role, stack)] += 1 / FREQ
    return {p: seconds.get(p, 0.0) for p in PARTS}
