"""Only what a process needs (issue 19): `stratq` (the API, the worker's
supervisor, the CLI) maps no libpython; the executor program
`stratq-executor`, the one process that embeds CPython, does, and maps none
of the libraries only the others use. When the executor program is missing,
does not start or is another build, `stratq worker --check` and the worker
say which file and why (docs/architecture.md, "Only what a process
needs")."""

import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from conftest import EXECUTOR_BIN, STRATQ_BIN, WORKERS_KEY, children, require_binary, wait_for

# What the API, the supervisor and the CLI link, and the executor needs not.
NOT_FOR_THE_EXECUTOR = ("libcurl", "libevent", "libssl", "libhiredis")

SEVEN = "def run(ctx):\n    return 7\n"


def mapped(pid):
    """The names of the files ``pid`` maps."""
    with open(f"/proc/{pid}/maps") as f:
        return {os.path.basename(p[5].strip()) for p in (line.split(None, 5) for line in f)
                if len(p) == 6 and p[5].startswith("/")}


def has_socket(pid):
    """Whether ``pid`` holds a socket: its main() runs, so the loader has
    mapped every library it links."""
    fd_dir = f"/proc/{pid}/fd"
    try:
        return any(os.readlink(f"{fd_dir}/{fd}").startswith("socket:") for fd in os.listdir(fd_dir))
    except OSError:
        return False


def maps_a(names, lib):
    return sorted(n for n in names if n.startswith(lib + ".") or n.startswith(lib + "-"))


def check(binary, env=None):
    return subprocess.run([str(binary), "worker", "--check"], capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL, env=dict(os.environ, **(env or {})))


def executor_line(res):
    lines = [x for x in res.stdout.splitlines() if x.startswith("executor: ")]
    assert len(lines) == 1, f"exit {res.returncode}\n{res.stdout}\n{res.stderr}"
    return lines[0]


def test_only_the_executor_maps_libpython(stack):
    api = stack.start_api()
    assert has_socket(api.pid)
    names = mapped(api.pid)
    # libcurl is the CLI's alone, loaded when it first speaks HTTP
    # (src/cli/curl_load.c): the API and the supervisor never map it.
    assert maps_a(names, "libhiredis") and not maps_a(names, "libpython3"), sorted(names)
    assert not maps_a(names, "libcurl"), sorted(names)

    # The CLI, waiting on a job that no worker has taken yet.
    job = api.client.submit({"code": SEVEN})
    require_binary()
    cli = subprocess.Popen([str(STRATQ_BIN), "result", "--wait", job], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env=dict(os.environ, STRATQ_API_URL=api.url))
    try:
        wait_for(lambda: has_socket(cli.pid), 30, "the CLI to connect to the API")
        names = mapped(cli.pid)
        assert maps_a(names, "libcurl") and not maps_a(names, "libpython3"), sorted(names)

        # The supervisor does not; its executor does, and only it.
        worker = stack.start_worker()
        names = mapped(worker.pid)
        assert maps_a(names, "libhiredis") and not maps_a(names, "libpython3"), sorted(names)
        assert not maps_a(names, "libcurl"), sorted(names)
        (executor,) = children(worker.pid)
        assert os.readlink(f"/proc/{executor}/exe") == str(EXECUTOR_BIN.resolve())
        assert Path(f"/proc/{executor}/comm").read_text().strip() == "stratq-executor"
        names = mapped(executor)
        assert maps_a(names, "libpython3"), sorted(names)
        for lib in NOT_FOR_THE_EXECUTOR:
            assert not maps_a(names, lib), (lib, sorted(names))

        out, err = cli.communicate(timeout=60)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    assert cli.returncode == 0 and out.splitlines()[-2:] == ["--- result", "7"], (cli.returncode, out, err)


def test_check_names_the_executor_program():
    res = check(STRATQ_BIN)
    assert res.returncode == 0, (res.stdout, res.stderr)
    assert executor_line(res) == f"executor: ok ({EXECUTOR_BIN}, stratq-executor {version()})"


def version():
    """This build's version (`stratq --version`)."""
    return subprocess.run([str(STRATQ_BIN), "--version"], capture_output=True, text=True,
                          check=True, timeout=30).stdout.split()[1]


def lone_copy(tmp_path):
    """A copy of stratq alone in a directory of its own."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    return Path(shutil.copy2(STRATQ_BIN, bin_dir / "stratq"))


def test_a_missing_executor_program_is_named(stack, tmp_path):
    binary = lone_copy(tmp_path)
    missing = binary.parent / "stratq-executor"
    res = check(binary)
    assert res.returncode == 4, (res.stdout, res.stderr)
    assert executor_line(res) == (
        f"executor: error: the executor program {missing} is missing: it must be installed "
        f"beside {binary} (make builds both into build/; make install and the image install both)")

    # A worker says the same.
    worker_stops(stack, binary, f"the executor program {missing} is missing")


def worker_stops(stack, binary, *says):
    """Starts a worker of ``binary``, which must stop at start (exit 1),
    before it registers, its log saying each of ``says``."""
    worker = stack.spawn("worker", ["worker", "--redis-url", stack.redis_url], binary=binary)
    assert worker.popen.wait(timeout=60) == 1, worker.describe()
    for text in says:
        assert text in worker.log(), worker.describe()
    assert stack.r.zcard(WORKERS_KEY) == 0


def compile_c(tmp_path, source, *args):
    """cc ``source`` (C) ARGS, in tmp_path."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        pytest.skip("needs a C compiler for a fake executor program")
    src = tmp_path / "fake.c"
    src.write_text(textwrap.dedent(source))
    subprocess.run([cc, str(src), *args], check=True, cwd=tmp_path)


def build_fake(tmp_path, binary, source, *args):
    """Compiles ``source`` into stratq-executor beside ``binary``."""
    compile_c(tmp_path, source, "-o", str(binary.parent / "stratq-executor"), *args)


def test_an_executor_program_that_does_not_start_is_named(tmp_path):
    # An executor whose library is gone, as a missing libpython would be.
    binary = lone_copy(tmp_path)
    compile_c(tmp_path, "int stratq_gone(void) { return 0; }\n", "-shared", "-fPIC", "-o",
              "libstratqgone.so")
    build_fake(tmp_path, binary, """
        int stratq_gone(void);
        int main(void) { return stratq_gone(); }
        """, f"-L{tmp_path}", "-lstratqgone")
    (tmp_path / "libstratqgone.so").unlink()
    res = check(binary)
    assert res.returncode == 4, (res.stdout, res.stderr)
    line = executor_line(res)
    assert line.startswith(f"executor: error: the executor program {binary.parent}/stratq-executor "
                           "does not start (exit 127): "), line
    assert "error while loading shared libraries: libstratqgone.so: cannot open shared object file" \
        in line, line


# Says it is version 0.0.0 to --version and in its READY message (type 1,
# src/common/frame.h: the type and the length, 32-bit big-endian, then the
# JSON object).
OTHER_BUILD = r"""
    #include <stdio.h>
    #include <string.h>
    #include <unistd.h>
    int main(int argc, char **argv)
    {
        if (argc == 2 && !strcmp(argv[1], "--version")) {
            puts("stratq-executor 0.0.0");
            return 0;
        }
        const char *m = "{\"version\": \"0.0.0\", \"sandbox\": {}}";
        unsigned n = (unsigned)strlen(m);
        unsigned char h[8] = {0, 0, 0, 1, n >> 24, n >> 16 & 255, n >> 8 & 255, n & 255};
        char c;
        if (write(3, h, 8) != 8 || write(3, m, n) != (ssize_t)n)
            return 1;
        while (read(3, &c, 1) > 0)
            ;
        return 0;
    }
    """


def test_an_executor_program_of_another_build_is_refused(stack, tmp_path):
    binary = lone_copy(tmp_path)
    build_fake(tmp_path, binary, OTHER_BUILD)
    res = check(binary)
    assert res.returncode == 4, (res.stdout, res.stderr)
    assert executor_line(res) == (
        f"executor: error: {binary.parent}/stratq-executor is another build (it says "
        f"'stratq-executor 0.0.0'; this is stratq {version()}): install both programs from one build")

    worker_stops(stack, binary, "the executor program is another build",
                 '"executor_version":"0.0.0"')


def test_the_executor_program_refuses_to_run_by_hand():
    res = subprocess.run([str(EXECUTOR_BIN)], capture_output=True, text=True, timeout=30,
                         stdin=subprocess.DEVNULL)
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "started by `stratq worker`" in res.stderr, res.stderr
