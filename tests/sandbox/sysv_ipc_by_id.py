# expect: blocked
# Reaches for System V IPC objects and POSIX message queues the job did not
# make, by id or by name: SHM_STAT_ANY, MSG_STAT_ANY and SEM_STAT_ANY walk
# every object of the namespace without a permission check, shmat and
# msgrcv would read what an object of the worker's uid holds. A job can make
# no such object (shmget, semget, msgget and mq_open are refused), so every
# call here must fail with EPERM (seccomp), whether or not the host has any
# object to find.
import ctypes
import platform

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

# x86_64 numbers (the attack suite's machines).
NR = {"shmat": 30, "shmctl": 31, "shmdt": 67, "semop": 65, "semctl": 66, "msgsnd": 69,
      "msgrcv": 70, "msgctl": 71, "semtimedop": 220, "mq_unlink": 241, "mq_timedsend": 242,
      "mq_timedreceive": 243, "mq_notify": 244, "mq_getsetattr": 245}
IPC_STAT, IPC_INFO, IPC_RMID = 2, 3, 0
SHM_STAT_ANY, MSG_STAT_ANY, SEM_STAT_ANY = 15, 13, 20
SHM_RDONLY, IPC_NOWAIT = 0o10000, 0o4000


def call(name, *args):
    """'EPERM' if seccomp refused the call, else what the kernel did."""
    ctypes.set_errno(0)
    rc = libc.syscall(ctypes.c_long(NR[name]), *[ctypes.c_long(a) for a in args])
    err = ctypes.get_errno()
    if rc == -1 and err == 1:
        return "EPERM"
    return f"rc {rc} errno {err}"


def run(ctx):
    if platform.machine() != "x86_64":
        return {"blocked": True, "skipped": f"system call numbers for {platform.machine()}"}
    buf = ctypes.create_string_buffer(4096)
    b = ctypes.addressof(buf)
    name = ctypes.create_string_buffer(b"nosuchqueue")
    out = {}
    # The first few indexes and ids: the kernel hands out small ones first.
    for i in range(4):
        out[f"shmctl SHM_STAT_ANY {i}"] = call("shmctl", i, SHM_STAT_ANY, b)
        out[f"msgctl MSG_STAT_ANY {i}"] = call("msgctl", i, MSG_STAT_ANY, b)
        out[f"semctl SEM_STAT_ANY {i}"] = call("semctl", i, 0, SEM_STAT_ANY, b)
        out[f"shmat {i}"] = call("shmat", i, 0, SHM_RDONLY)
        out[f"msgrcv {i}"] = call("msgrcv", i, b, 1024, 0, IPC_NOWAIT)
    out.update({
        "shmctl IPC_INFO": call("shmctl", 0, IPC_INFO, b),
        "shmctl IPC_STAT": call("shmctl", 0, IPC_STAT, b),
        "shmctl IPC_RMID": call("shmctl", 0x7fffffff, IPC_RMID, 0),
        "shmdt": call("shmdt", b),
        "msgsnd": call("msgsnd", 0, b, 8, IPC_NOWAIT),
        "msgctl IPC_RMID": call("msgctl", 0x7fffffff, IPC_RMID, 0),
        "semop": call("semop", 0, b, 1),
        "semtimedop": call("semtimedop", 0, b, 1, 0),
        "semctl IPC_RMID": call("semctl", 0x7fffffff, 0, IPC_RMID, 0),
        "mq_unlink": call("mq_unlink", ctypes.addressof(name)),
        "mq_timedsend": call("mq_timedsend", 0, b, 1, 0, 0),
        "mq_timedreceive": call("mq_timedreceive", 0, b, 4096, 0, 0),
        "mq_notify": call("mq_notify", 0, 0),
        "mq_getsetattr": call("mq_getsetattr", 0, 0, b),
    })
    return {"blocked": all(v == "EPERM" for v in out.values()),
            "detail": {k: v for k, v in out.items() if v != "EPERM"}}
