"""Runs one job inside its child process.

The executor starts ``python3 -I -B -c ...`` with:
  fd 3: the job request: a line of the executor's own settings as JSON
        ({"tmpdir", "mode", "max_result", "run_len", ...}), then the
        supervisor's request ({"id", "attempt", "spec"}) as it came, which
        the executor passes on without writing it again, run_len bytes of
        it. The pipe then stays open: at the end, its outcome written and
        its output closed, the harness waits on it for the executor
        (main);
  fd 4: where the outcome goes: one line holding a JSON object,
        {"status": "succeeded"},
        {"status": "failed" | "memory_exceeded",
         "error": {"type", "message", "traceback"}} or
        {"status": "output_exceeded"} (all of it would be more than the
        request's "max_result" bytes, STRATQ_MAX_RESULT),
        and for a success the result's JSON text after it. The result is
        kept as Python encoded it, so floats keep their shortest form;
        integers outside int64 are written as strings (_dumps). Job code
        can write this header too: the executor takes from a
        "memory_exceeded" one only its traceback (docs/security.md).
  fd 5: the job's events, one JSON object per line: {"t": "progress",
        "fraction", "message"} and {"t": "log", "msg", "fields"} (Context).
stdout and stderr are captured by the executor. The strategy's own code is
compiled as the module "strategy" under the file name "<strategy>".
"""

# Everything a job child needs is imported here, at module level, so that a
# warm child (forked from an interpreter that imported this module) finds it
# loaded and starts its job without touching the disk.
import contextlib
import json
import linecache
import os
import random
import re
import resource
import select
import sys
import tempfile
import traceback
import types

from ._context import EVENTS_FD, Context
from ._result import Result

STRATEGY_FILE = "<strategy>"


def _strategy_traceback(exc):
    """The traceback from the strategy's first frame on: the harness's own
    frames say nothing to the author of the strategy."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def _clean(text):
    """Text that can be stored as JSON: lone surrogates (from surrogate-escaped
    file names, say) become backslash escapes."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _error(exc):
    try:
        message = str(exc)
    except Exception:  # a hostile __str__ must not break the report
        message = f"<{type(exc).__name__} whose message cannot be shown>"
    return {
        "type": _clean(type(exc).__name__),
        "message": _clean(message),
        "traceback": _clean(_strategy_traceback(exc)),
    }


def _load(spec):
    code = spec["code"]
    # Lets tracebacks show the strategy's source lines.
    linecache.cache[STRATEGY_FILE] = (len(code), None, code.splitlines(True), STRATEGY_FILE)
    module = types.ModuleType("strategy")
    module.__file__ = STRATEGY_FILE
    sys.modules["strategy"] = module
    exec(compile(code, STRATEGY_FILE, "exec"), module.__dict__)
    name = spec.get("entrypoint") or "run"
    fn = getattr(module, name, None)
    if fn is None:
        raise AttributeError(f"the strategy defines no function '{name}' (its entrypoint)")
    if not callable(fn):
        raise TypeError(f"the strategy's entrypoint '{name}' is not callable")
    return fn


def _result_value(value):
    """A stratq.Result is stored in its compact, documented shape
    (docs/result-shape.md); any other value as it is."""
    return value.to_dict() if isinstance(value, Result) else value


INT64_MIN, INT64_MAX = -2**63, 2**63 - 1
# A run of 19 digits: the only way an integer past 64 bits shows in JSON
# text (floats past 1e16 are written with an exponent).
_LONG_DIGITS = re.compile(r"[0-9]{19}")


def _big_ints_as_strings(value):
    """The value with every integer outside int64 written as a string
    (``2**70`` -> ``"1180591620717411303424"``): results are read by
    clients that hold 64-bit integers only (the CLI, with jansson) or
    doubles (JavaScript, the dashboard). The executor takes integers of any
    size (it only validates the text, src/common/jsonv.h). Dicts and lists
    are copied where they hold one; other values are returned as they are."""
    if isinstance(value, int) and not isinstance(value, bool):
        return int.__repr__(value) if not INT64_MIN <= value <= INT64_MAX else value
    if isinstance(value, dict):
        return {k: _big_ints_as_strings(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_big_ints_as_strings(v) for v in value]
    return value


def _dumps(value):
    text = json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    if _LONG_DIGITS.search(text):  # maybe an integer past 64 bits (or a long string)
        text = json.dumps(_big_ints_as_strings(value), allow_nan=False, ensure_ascii=False,
                          separators=(",", ":"))
    return text


def run_job(request):
    """Runs the job described by request; returns the outcome dict."""
    spec = request["spec"]
    try:
        ctx = Context(request.get("id", ""), request.get("attempt", 1), spec.get("params") or {},
                      spec.get("data"), spec.get("timeout_s", 300), data_csv=spec.get("data_csv"),
                      data_dir=request.get("data_dir"), data_fd=request.get("data_fd"))
    except Exception as exc:  # data_csv that does not parse
        return {"status": "failed", "error": _error(exc)}
    try:
        fn = _load(spec)
        value = fn(ctx)
        value = _result_value(value)
    except MemoryError as exc:
        error = _error(exc)
        error["message"] = f"the job ran out of memory (memory_mb={spec.get('memory_mb')})"
        return {"status": "memory_exceeded", "error": error}
    except BaseException as exc:  # SystemExit and KeyboardInterrupt fail the job too
        return {"status": "failed", "error": _error(exc)}
    finally:
        ctx._close()
    max_result = int(request.get("max_result") or 0)
    try:
        text = _dumps(value)
        del value
        # Each character is at least one byte of UTF-8: a text this long is
        # over the cap however it encodes, and is not encoded at all.
        if max_result and len(text) > max_result:
            return {"status": "output_exceeded"}
        data = text.encode("utf-8")  # a lone surrogate cannot be stored
    except MemoryError:
        return {"status": "memory_exceeded", "error": {
            "type": "MemoryError",
            "message": f"the job ran out of memory (memory_mb={spec.get('memory_mb')}) "
                       "encoding its result as JSON",
            # The executor reports its own message: this says where.
            "traceback": "MemoryError: encoding the strategy's return value as JSON\n"}}
    except (TypeError, ValueError, OverflowError, RecursionError, UnicodeEncodeError) as exc:
        return {"status": "failed", "error": {
            "type": "ResultNotSerializable",
            "message": f"the strategy's return value is not JSON-serializable: {exc}",
            "traceback": ""}}
    return {"status": "succeeded", "result": data}


def _apply_limits(request):
    """Warm mode: the job's limits, set here because the child was forked
    before its job was known. Its address-space limit is the job's
    memory_mb on top of what the preloaded interpreter already maps."""
    spec = request["spec"]
    # The size of the executor this child was forked from (the sandbox keeps
    # the child itself out of /proc).
    vm_kb = int(request.get("base_vm_kb") or 0)
    mem = vm_kb * 1024 + int(spec.get("memory_mb", 1024)) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    # The executor's CPU-time limit for this timeout_s, the same as a cold
    # child's (src/worker/outcome.c, outcome_cpu_rlimit): its decision
    # that a job ended at the limit counts on it.
    soft, hard = request["cpu_rlimit"]
    resource.setrlimit(resource.RLIMIT_CPU, (int(soft), int(hard)))


def _fresh_entropy():
    """A forked child starts with its parent's RNG states: give each job its
    own. (The random module reseeds itself at fork; numpy does not.)
    numpy's global generator gets a whole Mersenne Twister state of fresh
    bytes, and no cached Gaussian: numpy.random.seed() would draw the same
    entropy through SeedSequence, whose machinery touches (and so copies
    from the executor) about 110 more pages: 182 against 75 page faults,
    0.5 against 0.2 ms, timed in a forked child on the development VM."""
    random.seed()
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        try:
            key = numpy.frombuffer(os.urandom(624 * 4), dtype=numpy.uint32)
            numpy.random.set_state(("MT19937", key, 624, 0, 0.0))
        except Exception:  # a numpy whose legacy state is not this
            numpy.random.seed()


_REHEARSAL = (b'{"id":"rehearsal","attempt":1,"spec":{"code":"import time\\n\\n\\ndef run(ctx):'
              b'\\n    return {\\"t\\": time.time()}\\n","params":{"i":1},"timeout_s":300,'
              b'"memory_mb":1024}}')


def _rehearse():
    """Warm mode, in the spare before its job: the steps every job takes
    (parse its request, make its Context, compile and run a strategy, encode
    its result), on a job of our own, so that the memory they write is
    copied from the executor now rather than on the real job's path. What it
    leaves is taken away again."""
    try:
        request = json.loads(_REHEARSAL)
        spec = request["spec"]
        ctx = Context(request["id"], request["attempt"], spec["params"], None, spec["timeout_s"])
        _dumps(_result_value(_load(spec)(ctx)))
    except Exception:  # only a head start: never a reason to lose the spare
        pass
    finally:
        sys.modules.pop("strategy", None)
        linecache.cache.pop(STRATEGY_FILE, None)


# How long the harness waits, its outcome written, for the executor.
HOLD_S = 0.1


def _enter_tmpdir(tmpdir):
    """The job's own directory as its working directory and TMPDIR. A warm
    spare is forked into it and enters it while it waits (main): the job's
    request then names the same one, and nothing is left to do."""
    if tmpdir and tmpdir != tempfile.tempdir:
        os.chdir(tmpdir)
        os.environ["TMPDIR"] = tmpdir
        tempfile.tempdir = tmpdir


def main(mode="cold"):
    if mode == "warm":
        # Nothing of the job is needed for this: done while the spare
        # waits, off the path from the job's arrival to its first line.
        _fresh_entropy()
        _rehearse()
        with contextlib.suppress(OSError):  # else entered with the job, as cold
            _enter_tmpdir(os.getcwd())  # the job's directory (src/worker/executor.c)
    # Waits here (a warm spare) until the executor sends the job.
    settings, run = _read_request()
    request = json.loads(run)
    request.update(json.loads(settings))
    if mode == "warm":
        _apply_limits(request)
    _enter_tmpdir(request.get("tmpdir"))
    if mode == "cold":
        from . import _noexec

        _noexec.refuse_exec()  # as warm mode's filter does: the job execs nothing
    out = os.fdopen(4, "wb")
    outcome = run_job(request)
    result = outcome.pop("result", b"")
    # The header is ASCII; an exception message with a lone surrogate is
    # escaped rather than allowed to make the header unreadable.
    header = json.dumps(outcome).encode("ascii", "backslashreplace") + b"\n"
    # What the executor would cut off at its cap (and kill the job for) is
    # not written: the job ends at once, output_exceeded.
    max_result = int(request.get("max_result") or 0)
    if max_result and len(header) + len(result) > max_result:
        header, result = b'{"status": "output_exceeded"}\n', b""
    sys.stdout.flush()
    sys.stderr.flush()
    # The job's output and events end here, before its result: once fd 4
    # is closed too, everything of the job is in the executor's hands
    # (src/worker/executor.c, loop_handover).
    for fd in (1, 2, EVENTS_FD):
        with contextlib.suppress(OSError):
            os.close(fd)
    out.write(header)
    out.write(result)
    out.close()
    # The executor reads this process's CPU time and peak memory while it
    # waits here, tells the outcome, then releases (or kills) it. Not longer
    # than HOLD_S: a process the job forked may still hold fd 4, so that the
    # executor never sees its end of file.
    select.select([3], [], [], HOLD_S)
    # Skip interpreter teardown: nothing the job left behind may run now.
    os._exit(0)


def _read_request():
    """The executor's settings line and the job's RUN (run_len bytes, as
    the settings say), from fd 3, which stays open for the wait at the
    end."""
    f = os.fdopen(3, "rb", closefd=False)
    settings = f.readline()
    return settings, f.read(json.loads(settings)["run_len"])
