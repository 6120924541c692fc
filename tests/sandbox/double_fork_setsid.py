# expect: blocked
# A grandchild that leaves the job's session and process group (fork,
# setsid, fork), sleeps past the job's end and then writes into a host
# directory. The job returns at once; the test then checks that nothing the
# job started outlived it (the worker's process tree is back to what it was,
# no process carries proc_name) and that victim_dir was not written.
import ctypes
import os
import time


def run(ctx):
    name = ctx.params["proc_name"].encode()
    target = os.path.join(ctx.params["victim_dir"], "written-by-a-grandchild.txt")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.setsid()
            if os.fork() == 0:
                if ctypes.CDLL(None).prctl(15, name, 0, 0, 0) == 0:  # PR_SET_NAME
                    os.write(w, b"1")
                os.close(w)
                time.sleep(120)
                with open(target, "w") as f:
                    f.write("escaped")
        finally:
            os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    started = os.read(r, 1) == b"1"
    # Whether the grandchild ran or not, the job itself was refused nothing:
    # the checks after the job are what can fail.
    return {"blocked": True, "detail": "grandchild running" if started else "no named grandchild"}
