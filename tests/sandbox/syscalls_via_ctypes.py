# expect: blocked
# Calls the kernel directly for what the sandbox denies, aimed at the
# executor by the host pid the test passes (executor_pid): every call must
# fail with EPERM (seccomp), whatever the job can or cannot see of the host.
import ctypes

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
SYS_pidfd_open, SYS_pidfd_getfd = 434, 438  # the same on every architecture


def refused(rc):
    return rc == -1 and ctypes.get_errno() == 1  # EPERM


def run(ctx):
    ex = ctx.params["executor_pid"]
    checks = {}
    rc = libc.ptrace(16, ex, None, None)  # PTRACE_ATTACH
    checks["ptrace_attach"] = refused(rc)
    if rc == 0:
        libc.ptrace(17, ex, None, None)  # PTRACE_DETACH: let it go on
    checks.update({
        "unshare_user": refused(libc.unshare(0x10000000)),
        "unshare_net": refused(libc.unshare(0x40000000)),
        "mount": refused(libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)),
        "chroot": refused(libc.chroot(b"/")),
        "setns": refused(libc.setns(0, 0)),
        "kill_everyone": refused(libc.kill(-1, 0)),
        "kill_a_group": refused(libc.kill(-ctx.params["supervisor_pid"], 0)),
    })
    iov = (ctypes.c_char * 8)()
    local = (ctypes.c_void_p * 2)(ctypes.cast(iov, ctypes.c_void_p), 8)
    checks["process_vm_readv"] = refused(libc.process_vm_readv(ex, local, 1, local, 1, 0))
    checks["process_vm_writev"] = refused(libc.process_vm_writev(ex, local, 1, local, 1, 0))
    # pidfd_getfd must be refused even with a pidfd of the executor in hand
    # (-1 where the executor is not visible to the job).
    pidfd = libc.syscall(SYS_pidfd_open, ex, 0)
    checks["pidfd_getfd"] = refused(libc.syscall(SYS_pidfd_getfd, pidfd, 0, 0))
    return {"blocked": all(checks.values()), "detail": checks}
