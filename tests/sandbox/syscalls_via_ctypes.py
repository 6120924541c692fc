# expect: blocked
import ctypes
import os

libc = ctypes.CDLL(None, use_errno=True)


def refused(rc):
    return rc == -1 and ctypes.get_errno() == 1  # EPERM


def run(ctx):
    ppid = os.getppid()
    checks = {
        "ptrace_attach": refused(libc.ptrace(16, ppid, None, None)),
        "unshare_user": refused(libc.unshare(0x10000000)),
        "unshare_net": refused(libc.unshare(0x40000000)),
        "mount": refused(libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)),
        "chroot": refused(libc.chroot(b"/")),
        "setns": refused(libc.setns(0, 0)),
        "kill_everyone": refused(libc.kill(-1, 0)),
        "kill_a_group": refused(libc.kill(-ppid, 0)),
    }
    iov = (ctypes.c_char * 8)()
    local = (ctypes.c_void_p * 2)(ctypes.cast(iov, ctypes.c_void_p), 8)
    checks["process_vm_readv"] = refused(libc.process_vm_readv(ppid, local, 1, local, 1, 0))
    return {"blocked": all(checks.values()), "detail": checks}
