"""The context object handed to a strategy's entrypoint (docs/strategies.md)."""

import errno
import json
import os
import stat
import sys
import time

# The job's events pipe (progress and log lines, one JSON object per line),
# read by the executor while the job runs.
EVENTS_FD = 5
# A progress update is sent at once when its whole percent or its message
# changed, or this long after the last one sent; otherwise it waits for the
# next call or the job's end. So a loop may call ctx.progress() on every step.
PROGRESS_INTERVAL_S = 0.05
MAX_MESSAGE = 1000  # characters of a progress message
MAX_LOG_LINE = 16384  # bytes of one log line
# The executor's caps on one events line (src/worker/executor.c,
# EVENTS_MAX_DEPTH and EVENTS_MAX_VALUES): it drops a line over them, so a
# log line over them is sent truncated instead, as one over MAX_LOG_LINE is.
MAX_LOG_DEPTH = 16  # arrays and objects open at once, the line itself included
MAX_LOG_VALUES = 1024  # values in the line, itself and its keys' values included


class Context:
    """What a job knows about itself and can do besides computing.

    Attributes:
        job_id: the job's id.
        attempt: 1 for the first run of the job, 2 for its first retry, ...
        params: the ``params`` object of the job spec, as a dict.
        data: the ``data`` value of the job spec (any JSON) as given; or, for
            a job submitted with ``data_csv``, that CSV as a pandas DataFrame
            (a list of dicts, one per row, when pandas is not importable);
            None when the job has neither.
        deadline: seconds left before the job is killed for running too long.
    """

    def __init__(self, job_id, attempt, params, data, timeout_s, data_csv=None, data_dir=None,
                 events_fd=EVENTS_FD, data_fd=None):
        self.job_id = job_id
        self.attempt = attempt
        self.params = params
        self.data = _parse_csv(data_csv, "data_csv") if data_csv is not None else data
        self._deadline = time.monotonic() + float(timeout_s)
        self._data_dir = data_dir or ""
        # The worker opens the data directory for the job as this descriptor:
        # the job's uid may not be able to reach it by its path.
        self._data_fd = data_fd
        self._events_fd = events_fd
        self._last_progress = 0.0
        self._last_sent = (None, None)
        self._pending = None

    @property
    def deadline(self):
        """Seconds left before the job is killed for running too long."""
        return max(0.0, self._deadline - time.monotonic())

    def progress(self, fraction, message=""):
        """Reports how far the job has got: ``fraction`` from 0 to 1 and a
        short message. The API (``progress`` in the job's record) and
        ``stratq status`` show it within a second. Cheap to call often:
        an update that changes neither the whole percent nor the message,
        less than 50 ms after the last one sent, is folded into the next."""
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
            raise TypeError(f"progress fraction must be a number from 0 to 1, not {fraction!r}")
        fraction = float(fraction)
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"progress fraction must be from 0 to 1, got {fraction}")
        message = str(message)[:MAX_MESSAGE]
        self._pending = {"t": "progress", "fraction": fraction, "message": message}
        now = time.monotonic()
        if ((int(fraction * 100), message) != self._last_sent
                or now - self._last_progress >= PROGRESS_INTERVAL_S):
            self._flush_progress(now)

    def log(self, message, **fields):
        """Adds a structured line to the job's log (GET /v1/jobs/{id}/logs,
        ``stratq logs``): the message and any JSON-serializable fields, with
        the time. Separate from what the job prints."""
        line = {"t": "log", "msg": str(message), "fields": _jsonable(fields)}
        fits = _within(line, MAX_LOG_DEPTH, MAX_LOG_VALUES)
        raw = b""
        if fits:
            data = json.dumps(line, ensure_ascii=False, separators=(",", ":"))
            raw = data.encode("utf-8", "backslashreplace")
        if not fits or len(raw) > MAX_LOG_LINE:
            line = {"t": "log", "msg": str(message)[:MAX_LOG_LINE // 4], "fields": {},
                    "truncated": True}
            raw = json.dumps(line, ensure_ascii=False).encode("utf-8", "backslashreplace")
        self._send(raw)

    def dataset(self, name):
        """Reads the CSV file ``name`` from the data directory
        (STRATQ_DATA_DIR; ``GET /v1/datasets`` lists them): a pandas
        DataFrame, or a list of dicts when pandas is not importable. ``.csv``
        may be left off. A name that leads outside the directory is
        refused."""
        if not self._data_dir:
            raise FileNotFoundError("this worker has no data directory (STRATQ_DATA_DIR is unset)")
        if not isinstance(name, str) or not name or "\0" in name:
            raise ValueError(f"dataset name must be a non-empty string, not {name!r}")
        if os.path.isabs(name) or ".." in name.replace("\\", "/").split("/"):
            raise PermissionError(f"dataset {name!r} is outside the data directory")
        if not name.endswith(".csv"):
            name += ".csv"
        fd = _open_beneath(self._data_fd, self._data_dir, name)
        with open(fd, encoding="utf-8", newline="") as f:
            return _parse_csv(f.read(), f"dataset {name!r}")

    def _flush_progress(self, now=None):
        if self._pending is None:
            return
        raw = json.dumps(self._pending, ensure_ascii=False).encode("utf-8", "backslashreplace")
        self._last_sent = (int(self._pending["fraction"] * 100), self._pending["message"])
        self._pending = None
        self._last_progress = time.monotonic() if now is None else now
        self._send(raw)

    def _send(self, raw):
        try:
            os.write(self._events_fd, raw + b"\n")
        except OSError:
            pass  # no executor listening (the harness run by hand): nothing to report to

    def _close(self):
        """At the job's end: the last progress update goes out."""
        self._flush_progress()

    def __repr__(self):
        return f"Context(job_id={self.job_id!r}, attempt={self.attempt})"


def _within(value, max_depth, max_values):
    """Whether value, as JSON, holds at most max_values values (itself, every
    element and every member's value) and nests at most max_depth arrays
    and objects, counted as the executor counts them (src/common/jsonv.h).
    Stops at the first value over."""
    count = 0
    stack = [iter((value,))]
    while stack:
        for v in stack[-1]:
            count += 1
            if count > max_values:
                return False
            if isinstance(v, (dict, list, tuple)):
                if len(stack) > max_depth:
                    return False
                stack.append(iter(v.values() if isinstance(v, dict) else v))
                break
        else:
            stack.pop()
    return True


def _jsonable(value, depth=0):
    """value as plain JSON: NaN and infinities become None, anything else
    unknown its repr(), keys strings."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if depth > 20:
        return repr(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, depth + 1) for v in value]
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        try:
            return _jsonable(item(), depth + 1)
        except Exception:
            pass
    return repr(value)


def _parse_csv(text, what):
    if not isinstance(text, str):
        raise TypeError(f"{what} must be CSV text")
    pandas = sys.modules.get("pandas")
    if pandas is None:
        try:
            import pandas  # noqa: F811  (cold mode: imported on first use)
        except ImportError:
            pandas = None
    if pandas is not None:
        import io

        return pandas.read_csv(io.StringIO(text))
    import csv
    import io

    return list(csv.DictReader(io.StringIO(text)))


def _open_beneath(dir_fd, dir_path, name):
    """Opens NAME (a relative path of plain components) inside the data
    directory, given as an open descriptor (or, without one, by its path),
    one component at a time and following no symbolic link, so that nothing
    outside it can be reached. Returns a read-only descriptor."""
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW
    parts = name.split("/")
    base = dir_fd if dir_fd is not None else os.open(dir_path, flags | os.O_DIRECTORY)
    fd = base
    try:
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if part in ("", "."):
                raise PermissionError(f"dataset {name!r} is outside the data directory")
            try:
                nfd = os.open(part, flags | (0 if last else os.O_DIRECTORY), dir_fd=fd)
            except FileNotFoundError:
                raise FileNotFoundError(f"no dataset {name!r} in the data directory") from None
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise PermissionError(f"dataset {name!r}: a symbolic link or not a directory"
                                          " on the way (datasets are plain files in the data"
                                          " directory)") from None
                raise
            if fd != base:
                os.close(fd)
            fd = nfd
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise FileNotFoundError(f"no dataset {name!r} in the data directory")
        out, fd = fd, base
        return out
    finally:
        if fd != base:
            os.close(fd)
        if dir_fd is None:
            os.close(base)
