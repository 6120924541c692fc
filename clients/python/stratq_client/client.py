"""The stratq HTTP API client (standard library only).

See :class:`Client`, and the package's README.md for a tour.
"""

import http.client
import json
import os
import re
import select
import socket
import threading
import time
import urllib.parse
import weakref

from . import errors as _errors
from .errors import (
    BadRequest,
    BatchError,
    ConnectionFailed,
    JobFailed,
    JobNotFinished,
    NotFound,
    ServerError,
    WaitTimeout,
)

__all__ = [
    "Client",
    "job_spec",
    "DEFAULT_URL",
    "TERMINAL_STATUSES",
    "STATUSES",
    "MAX_BATCH",
    "MAX_WAIT_S",
]

__version__ = "0.1.0"

DEFAULT_URL = "http://127.0.0.1:8080"

#: Statuses after which a job does not change again (unless it is retried).
TERMINAL_STATUSES = frozenset(
    {
        "succeeded",
        "failed",
        "timeout",
        "memory_exceeded",
        "cpu_exceeded",
        "output_exceeded",
        "crashed",
        "cancelled",
        "dead",
    }
)
#: Every job status (``queued``, ``scheduled`` and ``running`` are not terminal).
STATUSES = TERMINAL_STATUSES | {"queued", "scheduled", "running"}

#: Most specs in one ``POST /v1/jobs/batch`` (the API refuses more with 400).
MAX_BATCH = 1000
#: Longest ``?wait=`` long-poll the API accepts, in seconds.
MAX_WAIT_S = 60
#: Largest page of ``GET /v1/jobs``.
MAX_PAGE = 500

_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Connection errors after which a request on a reused keep-alive connection
# is sent once more on a fresh one (the server closed the idle connection).
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)
# Never sleep less than this between two long-polls that came back early.
_MIN_POLL_GAP = 0.2


def _read_code(code):
    """The source text of ``code``: a str is the source itself, bytes are
    UTF-8 source, a path-like (``pathlib.Path``) names a .py file to read."""
    if isinstance(code, str):
        return code
    if isinstance(code, (bytes, bytearray)):
        return bytes(code).decode("utf-8")
    if isinstance(code, os.PathLike):
        with open(os.fspath(code), encoding="utf-8") as f:
            return f.read()
    raise TypeError(
        f"code must be the source (str), UTF-8 bytes or a path-like to a .py file, "
        f"not {type(code).__name__}"
    )


def job_spec(
    code,
    params=None,
    data=None,
    *,
    timeout_s=None,
    memory_mb=None,
    entrypoint=None,
    max_attempts=None,
    retry_backoff_s=None,
    job_id=None,
    **extra,
):
    """Build a job spec (a dict, as the API takes it) for
    :meth:`Client.submit_batch`; :meth:`Client.submit` takes the same
    arguments.

    ``code``: the strategy's source (str), or a ``pathlib.Path`` (any
    path-like) of a .py file, which is read here. ``params``: a dict
    (``ctx.params``); ``data``: any JSON value (``ctx.data``).
    ``timeout_s`` (seconds, > 0, at most the API's ``STRATQ_MAX_TIMEOUT_S``),
    ``memory_mb`` (> 0, at most ``STRATQ_MAX_MEMORY_MB``), ``entrypoint``
    (the function to call, default ``run``), ``max_attempts`` (1-100, runs
    allowed for failures, timeouts and crashes) and ``retry_backoff_s``
    (0-3600, base of the exponential delay between those runs). ``job_id``:
    choose the job's id (1-64 of ``[A-Za-z0-9_-]``); submitting an id that
    exists creates nothing and returns it, which makes a submission safe to
    repeat. ``extra``: further spec fields, sent as given.

    Arguments left None are left out, so the API's defaults apply.
    """
    spec = {"code": _read_code(code)}
    fields = {
        "params": params,
        "data": data,
        "timeout_s": timeout_s,
        "memory_mb": memory_mb,
        "entrypoint": entrypoint,
        "max_attempts": max_attempts,
        "retry_backoff_s": retry_backoff_s,
        "id": job_id,
    }
    fields.update(extra)
    spec.update({k: v for k, v in fields.items() if v is not None})
    return spec


def _normalize_spec(spec):
    """A batch item: a mapping like :func:`job_spec`'s result (its ``code``
    may be path-like)."""
    if not hasattr(spec, "keys"):
        raise TypeError(f"a job spec must be a mapping, not {type(spec).__name__}")
    out = dict(spec)
    if "code" in out:
        out["code"] = _read_code(out["code"])
    return out


def _check_job_id(job_id):
    if not isinstance(job_id, str) or not _ID_RE.match(job_id):
        raise ValueError(f"not a job id (1 to 64 characters of [A-Za-z0-9_-]): {job_id!r}")
    return job_id


def _check_poll(poll):
    if isinstance(poll, bool) or not isinstance(poll, int) or not 1 <= poll <= MAX_WAIT_S:
        raise ValueError(f"poll must be an integer from 1 to {MAX_WAIT_S} (seconds), not {poll!r}")
    return poll


def _socket_dropped(sock):
    """True when an idle keep-alive socket is readable: the server closed
    it (or sent something unasked), so it must not be reused."""
    try:
        if hasattr(select, "poll"):
            p = select.poll()
            p.register(sock, select.POLLIN | select.POLLERR | select.POLLHUP)
            return bool(p.poll(0))
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable)
    except (OSError, ValueError):
        return True


class Client:
    """A client of the stratq HTTP API.

    ``base_url``: the API's URL (``http://`` or ``https://``, optionally
    with a path prefix); default ``$STRATQ_API_URL``, else
    ``http://127.0.0.1:8080``. ``token``: the bearer token for an API run
    with ``STRATQ_API_TOKENS_FILE``; default ``$STRATQ_API_TOKEN`` (pass
    ``token=""`` to send none). ``timeout``: seconds to wait for the
    connection and for each answer; a long-poll adds its own wait to it.

    ``max_retries``: how many times a request that is safe to repeat (every
    GET, a submit with a ``job_id``, a batch whose specs all have an
    ``id``) is sent again after a 503 or 429 answer, waiting the answer's
    ``Retry-After`` (at most ``max_retry_wait`` seconds) in between. Other
    POSTs and DELETEs are never repeated automatically. ``ssl_context``:
    for ``https://`` URLs.

    A client may be shared by threads (each thread uses its own keep-alive
    connection) and is a context manager (``close()`` on exit). It connects
    directly: proxy settings in the environment are not used.

    Every method raises :class:`~stratq_client.errors.ConnectionFailed`
    when the API cannot be reached and an
    :class:`~stratq_client.errors.APIError` subclass when it answers with
    an error (see :mod:`stratq_client.errors`).
    """

    def __init__(
        self,
        base_url=None,
        token=None,
        timeout=30,
        *,
        max_retries=3,
        max_retry_wait=30.0,
        ssl_context=None,
    ):
        if base_url is None:
            base_url = os.environ.get("STRATQ_API_URL") or DEFAULT_URL
        if token is None:
            token = os.environ.get("STRATQ_API_TOKEN")
        token = (token or "").strip() or None
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url must be an http:// or https:// URL, not {base_url!r}")
        if parts.query or parts.fragment:
            raise ValueError(f"base_url must not have a query or fragment: {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.max_retry_wait = float(max_retry_wait)
        self._token = token
        self._scheme = parts.scheme
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._ssl_context = ssl_context
        self._local = threading.local()
        self._conns = weakref.WeakSet()
        self._lock = threading.Lock()
        self._user_agent = f"stratq-client/{__version__} (python)"

    def __repr__(self):
        return f"Client({self.base_url!r}, token={'<set>' if self._token else None})"

    # -- Connections ------------------------------------------------------

    def close(self):
        """Close the client's keep-alive connections (of every thread). The
        client stays usable: the next request opens a new one."""
        with self._lock:
            conns = list(self._conns)
            self._conns = weakref.WeakSet()
        for conn in conns:
            conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _new_connection(self):
        if self._scheme == "https":
            conn = http.client.HTTPSConnection(
                self._host, self._port, timeout=self.timeout, context=self._ssl_context
            )
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
        with self._lock:
            self._conns.add(conn)
        return conn

    def _connection(self):
        """(this thread's connection, whether it is an open one being
        reused)."""
        loc = self._local
        conn = getattr(loc, "conn", None)
        if conn is not None and getattr(loc, "pid", None) != os.getpid():
            conn = None  # inherited through fork(): the parent owns that socket
        if conn is not None and conn.sock is not None and _socket_dropped(conn.sock):
            conn.close()
        if conn is None:
            conn = self._new_connection()
            loc.conn, loc.pid = conn, os.getpid()
        return conn, conn.sock is not None

    def _send(self, method, target, payload, headers, timeout, resend_ok):
        url = self.base_url + target[len(self._prefix) :]
        for attempt in range(2):
            conn, reused = self._connection()
            conn.timeout = timeout
            if conn.sock is not None:
                conn.sock.settimeout(timeout)
            try:
                conn.request(method, target, body=payload, headers=headers)
                resp = conn.getresponse()
                raw = resp.read()
                if resp.will_close:
                    conn.close()
                return resp.status, {k.lower(): v for k, v in resp.getheaders()}, raw
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                if attempt == 0 and reused and resend_ok and isinstance(e, _STALE):
                    continue
                if isinstance(e, (TimeoutError, socket.timeout)):
                    what = f"no answer within {timeout:g} s"
                else:
                    what = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
                raise ConnectionFailed(
                    f"cannot reach the stratq API at {self.base_url} ({method} {url}): {what}",
                    url=url,
                    reason=e,
                ) from e
        raise AssertionError("unreachable")

    def _request(self, method, path, *, query=None, body=None, headers=None, wait_s=0,
                 safe=None, ok=None, raw=False):
        """Send one request and return ``(status, parsed JSON body)`` (the
        text with ``raw``); raise the APIError of an error status (unless
        it is in ``ok``). ``safe``: may be sent again (default: GET)."""
        if safe is None:
            safe = method == "GET"
        target = self._prefix + path
        if query:
            target += "?" + urllib.parse.urlencode(query)
        hdrs = {"Accept": "application/json", "User-Agent": self._user_agent}
        if self._token:
            hdrs["Authorization"] = f"Bearer {self._token}"
        payload = None
        if body is not None:
            payload = json.dumps(body, ensure_ascii=False, allow_nan=False).encode("utf-8")
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        timeout = self.timeout + wait_s
        retries = 0
        while True:
            status, rheaders, data = self._send(method, target, payload, hdrs, timeout, safe)
            if status in (429, 503) and safe and retries < self.max_retries:
                delay = _errors._retry_after(rheaders)
                if delay is None:
                    delay = 0.5 * 2**retries
                time.sleep(min(delay, self.max_retry_wait))
                retries += 1
                continue
            break
        text = data.decode("utf-8", errors="replace")
        parsed = None
        if not raw or status >= 400:
            try:
                parsed = json.loads(text) if text.strip() else None
            except ValueError:
                parsed = None
        if status >= 400 and not (ok and status in ok):
            raise _errors.error_from_response(
                status, parsed, text, rheaders, method, self.base_url + target[len(self._prefix) :]
            )
        if raw:
            return status, text
        if parsed is None and status < 400:
            raise ServerError(
                f"the API answered {status} without a JSON body: {text[:200]!r}",
                status=status, headers=rheaders, method=method, url=self.base_url + path,
            )
        return status, parsed

    # -- Submitting -------------------------------------------------------

    def submit(
        self,
        code,
        params=None,
        data=None,
        *,
        timeout_s=None,
        memory_mb=None,
        entrypoint=None,
        max_attempts=None,
        retry_backoff_s=None,
        job_id=None,
        **extra,
    ):
        """Submit one job (``POST /v1/jobs``); return its id.

        ``code`` is the strategy's source, or a ``pathlib.Path`` to a .py
        file (read here). The other arguments are as for :func:`job_spec`:
        ``params`` (``ctx.params``), ``data`` (``ctx.data``), ``timeout_s``,
        ``memory_mb``, ``entrypoint``, ``max_attempts``,
        ``retry_backoff_s``, and ``extra`` spec fields; None leaves a field
        to the API's default.

        ``job_id`` names the job: if a job with that id exists already,
        nothing is created and its id is returned (the API's idempotency),
        so such a submit is also retried after a 503. Without one the
        submission is sent exactly once: after a
        :class:`~stratq_client.errors.ConnectionFailed` it may or may not
        have been created.

        Raises :class:`~stratq_client.errors.BadRequest` (its ``field``
        names the bad field) for a spec the API refuses,
        :class:`~stratq_client.errors.PayloadTooLarge` over its body limit.
        """
        spec = job_spec(
            code,
            params,
            data,
            timeout_s=timeout_s,
            memory_mb=memory_mb,
            entrypoint=entrypoint,
            max_attempts=max_attempts,
            retry_backoff_s=retry_backoff_s,
            job_id=job_id,
            **extra,
        )
        _, body = self._request("POST", "/v1/jobs", body=spec, safe="id" in spec)
        return body["id"]

    def submit_batch(self, specs):
        """Submit up to :data:`MAX_BATCH` (1000) jobs in one request
        (``POST /v1/jobs/batch``); return their ids, in order.

        ``specs``: mappings as :func:`job_spec` returns them (keys
        ``code``, ``params``, ``data``, ``timeout_s``, ``memory_mb``,
        ``entrypoint``, ``max_attempts``, ``retry_backoff_s``, ``id``); a
        ``code`` may be a path-like, which is read.

        The API checks each spec on its own: when some are refused, the
        others are still enqueued, and :class:`~stratq_client.errors.BatchError`
        is raised with ``ids`` (None for each refused spec) and ``errors``
        (``{index: BadRequest}``). An empty list or more than 1000 specs is
        a :class:`~stratq_client.errors.BadRequest` (``field == "jobs"``)
        from the API. The request is retried after a 503 only when every
        spec has an ``id``.
        """
        specs = [_normalize_spec(s) for s in specs]
        safe = bool(specs) and all("id" in s for s in specs)
        _, body = self._request("POST", "/v1/jobs/batch", body={"jobs": specs}, safe=safe)
        items = body.get("jobs") if isinstance(body, dict) else None
        if not isinstance(items, list) or len(items) != len(specs):
            raise ServerError(
                f"the batch answer does not have one item per spec: {body!r}"[:500],
                status=200, body=body, method="POST", url=self.base_url + "/v1/jobs/batch",
            )
        ids, errs = [], {}
        for i, item in enumerate(items):
            if isinstance(item, dict) and "error" in item:
                ids.append(None)
                # With an id, the spec was valid and Redis refused the job.
                cls = ServerError if "id" in item else BadRequest
                errs[i] = cls(str(item["error"]), body=item)
            else:
                ids.append(item["id"])
        if errs:
            raise BatchError(ids, errs, items)
        return ids

    def run(self, code, params=None, data=None, *, timeout=None, poll=30, **spec):
        """Submit a job and wait for its result: :meth:`submit` then
        :meth:`result` (``timeout`` and ``poll`` are the wait's)."""
        return self.result(self.submit(code, params, data, **spec), timeout=timeout, poll=poll)

    # -- Reading jobs -----------------------------------------------------

    def status(self, job_id):
        """The job's record (``GET /v1/jobs/{id}``): a dict with ``id``,
        ``status``, ``attempts``, ``created_ms``, ``started_ms``,
        ``finished_ms``, ``worker``, ``spec``, ``error``, ``stdout``,
        ``stderr``, ``usage``, ``result``... Raises
        :class:`~stratq_client.errors.NotFound` for an unknown or expired
        job, ValueError for a string that is not a job id."""
        _, body = self._request("GET", f"/v1/jobs/{_check_job_id(job_id)}")
        return body

    def _long_poll(self, job_id, fetch, timeout, poll, wait=True):
        """Call ``fetch(wait_s)`` -> (done, value, status) until done, with
        the API's whole-second ``?wait=`` long-polls, until ``timeout``."""
        _check_poll(poll)
        if timeout is not None and timeout < 0:
            raise ValueError(f"timeout must be >= 0 or None, not {timeout!r}")
        start = time.monotonic()
        deadline = None if timeout is None else start + timeout
        while True:
            if not wait:
                s = 0
            elif deadline is None:
                s = poll
            else:
                s = max(0, min(poll, int(deadline - time.monotonic())))
            t0 = time.monotonic()
            done, value, status = fetch(s)
            if done:
                return value
            if not wait:
                raise JobNotFinished(job_id, status)
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                raise WaitTimeout(job_id, status, timeout)
            # The API holds a long-poll until the job is terminal or the
            # wait is over, but never busy-loop on an early answer; the
            # API's waits are whole seconds, so the last < 1 s is polled.
            gap = _MIN_POLL_GAP - (now - t0)
            if deadline is not None:
                gap = min(max(gap, 0.1 if s == 0 else 0), deadline - now)
            if gap > 0:
                time.sleep(gap)

    def wait(self, job_id, timeout=None, poll=30):
        """Wait until the job is terminal and return its record.

        Uses the API's long-poll (``GET /v1/jobs/{id}?wait=S``, S up to
        ``poll`` seconds, 1-60) again and again; the API answers as soon as
        the job finishes. ``timeout``: seconds in all (None: no limit); past
        it, :class:`~stratq_client.errors.WaitTimeout` (a TimeoutError) is
        raised and the job goes on. ``timeout=0`` checks once.

        Returns the record whatever the terminal status; see :meth:`result`
        to get the value or an exception.
        """
        path = f"/v1/jobs/{_check_job_id(job_id)}"

        def fetch(s):
            _, job = self._request("GET", path, query={"wait": s} if s else None, wait_s=s)
            return job.get("status") in TERMINAL_STATUSES, job, job.get("status")

        return self._long_poll(job_id, fetch, timeout, poll)

    def result(self, job_id, wait=True, timeout=None, poll=30):
        """The job's result: the value its entrypoint returned.

        With ``wait`` (the default) it waits until the job is terminal,
        through ``GET /v1/jobs/{id}/result?wait=S`` long-polls, at most
        ``timeout`` seconds (None: no limit), raising
        :class:`~stratq_client.errors.WaitTimeout` past it. Without
        ``wait`` it asks once and raises
        :class:`~stratq_client.errors.JobNotFinished` when the job is not
        terminal.

        A job that ended in any status but ``succeeded`` raises
        :class:`~stratq_client.errors.JobFailed` with its ``status``,
        ``error_type``, ``error_message``, ``traceback`` and the full
        record in ``job``.
        """
        path = f"/v1/jobs/{_check_job_id(job_id)}/result"

        def fetch(s):
            status, body = self._request(
                "GET", path, query={"wait": s} if s else None, wait_s=s
            )
            return status == 200, body, body.get("status")

        body = self._long_poll(job_id, fetch, timeout, poll, wait=wait)
        if body.get("status") == "succeeded":
            return body.get("result")
        try:
            job = self.status(job_id)
        except NotFound:
            job = None
        raise JobFailed(job_id, body.get("status"), body.get("error"), job)

    def logs(self, job_id, stdout_offset=0, stderr_offset=0):
        """What the job printed (``GET /v1/jobs/{id}/logs``), also while it
        runs: a dict with ``stdout`` and ``stderr`` (the text from the
        given byte offsets to now), ``stdout_offset`` and ``stderr_offset``
        (the offsets to pass next time), ``status`` and ``done`` (True once
        the job is terminal: no more output will come)."""
        query = {"stdout_offset": int(stdout_offset), "stderr_offset": int(stderr_offset)}
        _, body = self._request("GET", f"/v1/jobs/{_check_job_id(job_id)}/logs", query=query)
        return body

    def follow_logs(self, job_id, interval=0.25, timeout=None):
        """Follow a job's output: yield each :meth:`logs` answer that has
        new text, every ``interval`` seconds, until the job is terminal (the
        last answer, ``done`` True, is always yielded). ``timeout``: raise
        :class:`~stratq_client.errors.WaitTimeout` past it (None: no
        limit)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        out = err = 0
        while True:
            page = self.logs(job_id, out, err)
            out, err = page["stdout_offset"], page["stderr_offset"]
            if page["done"]:
                yield page
                return
            if page["stdout"] or page["stderr"]:
                yield page
            if deadline is not None and time.monotonic() + interval > deadline:
                raise WaitTimeout(job_id, page["status"], timeout)
            time.sleep(interval)

    def jobs(self, status=None, limit=None, page_size=100, tenant=None):
        """Iterate over recent jobs, newest first (``GET /v1/jobs``),
        fetching pages of ``page_size`` (1-500) with the API's cursor as
        the iteration goes. ``status``: only jobs in this status (None: all
        of them). ``tenant``: only this tenant's jobs (None: every tenant's
        the token may see; a token that names a tenant sees its own only).
        ``limit``: stop after this many jobs (None: every job the API's
        listing indexes keep, up to ``STRATQ_INDEX_SIZE``).

        Each item is a summary: ``id``, ``status``, ``attempts``,
        ``created_ms``, ``started_ms``, ``finished_ms``, ``worker``,
        ``tenant``.
        """
        if limit is not None and limit <= 0:
            return
        cursor, n = None, 0
        while True:
            page = self.jobs_page(status, limit=page_size, cursor=cursor, tenant=tenant)
            for job in page["jobs"]:
                yield job
                n += 1
                if limit is not None and n >= limit:
                    return
            # A page can be short, even empty, and still have a cursor: the
            # server reads a bounded number of ids per page.
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def jobs_page(self, status=None, limit=50, cursor=None, tenant=None):
        """One page of ``GET /v1/jobs``: ``{"jobs": [...], "next_cursor":
        str or None}``. Pass ``next_cursor`` as ``cursor`` for the next
        page; it is None on the last one. ``status`` and ``tenant`` filter
        as for :meth:`jobs`."""
        query = {"limit": int(limit)}
        if status is not None:
            query["status"] = status
        if tenant is not None:
            query["tenant"] = tenant
        if cursor is not None:
            query["cursor"] = cursor
        _, body = self._request("GET", "/v1/jobs", query=query)
        return body

    # -- Changing jobs ----------------------------------------------------

    def cancel(self, job_id, wait=False, timeout=None):
        """Cancel a job (``DELETE /v1/jobs/{id}``).

        Returns the API's answer, ``{"id", "status"}``: ``cancelled`` for a
        job that was waiting in the queue (it is cancelled now), or
        ``cancelling`` for a running job (its worker kills it within a
        second). With ``wait``, waits (at most ``timeout`` seconds) until
        the job is terminal and returns its record instead. Raises
        :class:`~stratq_client.errors.Conflict` for a job that has finished
        already. Never retried automatically.
        """
        _, body = self._request("DELETE", f"/v1/jobs/{_check_job_id(job_id)}")
        if wait:
            return self.wait(job_id, timeout=timeout)
        return body

    def retry(self, job_id):
        """Run a job that ended without success again, as a new attempt
        with the same id and spec (``POST /v1/jobs/{id}/retry``). Returns
        ``{"id", "status": "queued", "attempts"}`` (runs so far). Raises
        :class:`~stratq_client.errors.Conflict` for a job that is queued,
        scheduled, running or succeeded. Never retried automatically."""
        _, body = self._request("POST", f"/v1/jobs/{_check_job_id(job_id)}/retry")
        return body

    # -- The service --------------------------------------------------------

    def workers(self):
        """The live workers (``GET /v1/workers``): a list of dicts with
        ``id``, ``host``, ``pid``, ``state``, ``current_job``,
        ``jobs_done``, ``jobs_failed``, ``last_heartbeat_ms``, ``sandbox``..."""
        _, body = self._request("GET", "/v1/workers")
        return body["workers"]

    def queue(self):
        """Queue counts (``GET /v1/queue``): ``queue`` (its name),
        ``pending``, ``processing``, ``scheduled``, ``dead``, ``workers``."""
        _, body = self._request("GET", "/v1/queue")
        return body

    def health(self):
        """``GET /healthz`` (no token needed): ``{"status": "ok" or
        "degraded", "redis": bool, "version"}``; a degraded API (503) is
        returned, not raised."""
        _, body = self._request("GET", "/healthz", ok=(503,), safe=False)
        return body

    def metrics(self):
        """The Prometheus metrics text (``GET /metrics``)."""
        _, text = self._request("GET", "/metrics", raw=True)
        return text
