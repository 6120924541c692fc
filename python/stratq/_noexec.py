"""A cold job's second seccomp filter: no exec once the interpreter runs.

A cold job's interpreter is itself exec'd after the executor's filter is in
place, so that filter cannot refuse exec, and Landlock must let the
interpreter and its ELF loader execute: `ld.so /bin/sh` or a memfd would run.
Before the job's code runs, the harness adds this filter (filters stack; the
strictest answer wins): execve and execveat fail with EPERM, as they do in
warm mode. It needs no_new_privs, which the executor set.
"""

import ctypes
import os
import platform

# (AUDIT_ARCH_*, execve, execveat) by machine.
_ARCHES = {
    "x86_64": (0xC000003E, 59, 322),
    "aarch64": (0xC00000B7, 221, 281),
}

_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2
_RET_ALLOW = 0x7FFF0000
_RET_EPERM = 0x00050000 | 1
_LD_W_ABS, _JEQ_K, _RET_K = 0x20, 0x15, 0x06


class _Insn(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8),
                ("k", ctypes.c_uint32)]


class _Prog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_Insn))]


def refuse_exec():
    """Installs the filter. Raises OSError if the kernel refuses it, or
    RuntimeError on a machine this module has no system call numbers for."""
    arch = _ARCHES.get(platform.machine())
    if arch is None:
        raise RuntimeError(f"no exec filter for {platform.machine()}")
    audit_arch, execve, execveat = arch
    insns = [
        (_LD_W_ABS, 0, 0, 4),            # seccomp_data.arch
        (_JEQ_K, 0, 4, audit_arch),      # another ABI: the executor's filter decides
        (_LD_W_ABS, 0, 0, 0),            # seccomp_data.nr
        (_JEQ_K, 1, 0, execve),
        (_JEQ_K, 0, 1, execveat),
        (_RET_K, 0, 0, _RET_EPERM),
        (_RET_K, 0, 0, _RET_ALLOW),
    ]
    prog_insns = (_Insn * len(insns))(*[_Insn(*i) for i in insns])
    prog = _Prog(len(insns), prog_insns)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"cannot refuse exec to the job: {os.strerror(e)}")
