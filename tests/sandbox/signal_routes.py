# expect: blocked
# Signals the worker's processes by every route besides kill(): tkill,
# tgkill, rt_sigqueueinfo, rt_tgsigqueueinfo and pidfd_send_signal, aimed at
# the executor and the supervisor by the host pids the test passes and at
# the job's parent; and asks for SIGIO-style signals to be sent to them
# (fcntl F_SETOWN, F_SETOWN_EX, F_SETSIG; a socket's ioctl FIOSETOWN,
# SIOCSPGRP). Each target is probed with signal 0 first; SIGKILL follows
# only a refused probe, so a hole shows as "blocked": false instead of
# killing the worker. An owner that was accepted is never given an I/O
# event. Where Landlock scopes signals (ABI 6) it refuses the signals too:
# with STRATQ_TEST_SANDBOX_DISABLE=signal_scope (the test passes it on to
# STRATQ_SANDBOX_DISABLE), seccomp alone must refuse them.
import ctypes
import os
import platform
import signal
import socket

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
NR = {"tkill": 200, "tgkill": 234, "rt_sigqueueinfo": 129, "rt_tgsigqueueinfo": 297,
      "pidfd_send_signal": 424, "pidfd_open": 434}
F_SETOWN, F_SETSIG, F_SETOWN_EX = 8, 10, 15
FIOSETOWN, SIOCSPGRP = 0x8901, 0x8902
SI_QUEUE = -1


def syscall(name, *args):
    ctypes.set_errno(0)
    rc = libc.syscall(ctypes.c_long(NR[name]), *args)
    if rc < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return rc


def siginfo(sig):
    info = (ctypes.c_int * 32)()  # 128 bytes
    info[0], info[1], info[2] = sig, 0, SI_QUEUE  # si_signo, si_errno, si_code
    info[4] = os.getpid()  # si_pid
    return info


def attempt(send):
    """'refused: ...' if both the probe and SIGKILL raised OSError, else
    what went through."""
    try:
        send(0)
    except OSError as e:
        probe = f"{type(e).__name__} {e.errno}"
    else:
        return "signal 0 delivered"
    try:
        send(signal.SIGKILL)
    except OSError as e:
        return f"refused: {probe}, then {type(e).__name__} {e.errno}"
    return "SIGKILL delivered"


def pidfd_send(pid, sig):
    fd = syscall("pidfd_open", pid, 0)  # fails where the target is not visible
    try:
        syscall("pidfd_send_signal", fd, sig, None, 0)
    finally:
        os.close(fd)


def refused_owner(what, fn):
    """An owner setting must be refused outright (EPERM)."""
    try:
        fn()
    except OSError as e:
        return f"refused: {e.errno}" if e.errno == 1 else f"failed otherwise: {e.errno}"
    return f"{what} accepted"


def run(ctx):
    if platform.machine() != "x86_64":
        return {"blocked": True, "skipped": f"system call numbers for {platform.machine()}"}
    p = ctx.params
    targets = {"supervisor": p["supervisor_pid"], "executor": p["executor_pid"]}
    ppid = os.getppid()
    if ppid not in (0, 1):
        targets["parent"] = ppid
    out = {}
    for what, pid in targets.items():
        if pid <= 1 or pid == os.getpid():
            continue
        routes = {
            "tkill": lambda sig, pid=pid: syscall("tkill", pid, sig),
            "tgkill": lambda sig, pid=pid: syscall("tgkill", pid, pid, sig),
            "rt_sigqueueinfo": lambda sig, pid=pid: syscall("rt_sigqueueinfo", pid, sig, siginfo(sig)),
            "rt_tgsigqueueinfo": lambda sig, pid=pid: syscall("rt_tgsigqueueinfo", pid, pid, sig,
                                                              siginfo(sig)),
            "pidfd_send_signal": lambda sig, pid=pid: pidfd_send(pid, sig),
        }
        for route, send in routes.items():
            out[f"{route} {what} {pid}"] = attempt(send)

    # Owners of a socket's I/O signals: the executor, and the job itself (a
    # job has no use for SIGIO, and the owner could be changed later).
    a, b = socket.socketpair()
    r = a.fileno()
    try:
        for what, pid in (("executor", p["executor_pid"]), ("self", os.getpid())):
            owner_ex = (ctypes.c_int * 2)(1, pid)  # F_OWNER_PID
            arg = ctypes.c_int(pid)
            out[f"F_SETOWN {what}"] = refused_owner("F_SETOWN", lambda: _fcntl(r, F_SETOWN, pid))
            out[f"F_SETOWN_EX {what}"] = refused_owner(
                "F_SETOWN_EX", lambda: _fcntl(r, F_SETOWN_EX, ctypes.addressof(owner_ex)))
            out[f"FIOSETOWN {what}"] = refused_owner(
                "FIOSETOWN", lambda: _ioctl(r, FIOSETOWN, ctypes.addressof(arg)))
            out[f"SIOCSPGRP {what}"] = refused_owner(
                "SIOCSPGRP", lambda: _ioctl(r, SIOCSPGRP, ctypes.addressof(arg)))
        out["F_SETSIG"] = refused_owner("F_SETSIG", lambda: _fcntl(r, F_SETSIG, signal.SIGWINCH))
    finally:
        a.close()
        b.close()
    return {"blocked": all(v.startswith("refused") for v in out.values()),
            "detail": {k: v for k, v in out.items() if not v.startswith("refused")} or out}


def _fcntl(fd, cmd, arg):
    ctypes.set_errno(0)
    if libc.fcntl(fd, cmd, ctypes.c_long(arg)) < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def _ioctl(fd, cmd, arg):
    ctypes.set_errno(0)
    if libc.ioctl(fd, ctypes.c_ulong(cmd), ctypes.c_void_p(arg)) < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
