"""The exceptions of :mod:`stratq_client`.

Everything the client raises on purpose is a :class:`StratqError`::

    StratqError
    ├── APIError                  the API answered with an error status
    │   ├── BadRequest            400 (and 422): a bad spec, query or JSON
    │   ├── Unauthorized          401: no bearer token
    │   │   └── Forbidden         403: a token the API does not know
    │   ├── NotFound              404: no such job (unknown or expired)
    │   ├── MethodNotAllowed      405
    │   ├── Conflict              409: the job is not in a state for this
    │   ├── PayloadTooLarge       413: body over STRATQ_MAX_BODY
    │   ├── TooManyRequests       429 (retry_after)
    │   └── ServerError           5xx
    │       └── Unavailable       503: Redis away / too many connections (retry_after)
    ├── ConnectionFailed          the API could not be reached (also a ConnectionError)
    ├── WaitTimeout               a wait ran out (also a TimeoutError)
    ├── JobFailed                 the job ended in a terminal status other than succeeded
    ├── JobNotFinished            result(wait=False) of a job that is not terminal
    └── BatchError                some specs of a batch were refused

The API's error body is ``{"error": "<message>"}``: one message, no
separate field name. :class:`BadRequest` recovers the field (or query
parameter, or header) the message names into :attr:`BadRequest.field`, and
the position of malformed JSON into ``line`` and ``column``.
"""

import re

__all__ = [
    "StratqError",
    "APIError",
    "BadRequest",
    "Unauthorized",
    "Forbidden",
    "NotFound",
    "MethodNotAllowed",
    "Conflict",
    "PayloadTooLarge",
    "TooManyRequests",
    "ServerError",
    "Unavailable",
    "ConnectionFailed",
    "WaitTimeout",
    "JobFailed",
    "JobNotFinished",
    "BatchError",
    "error_from_response",
]


class StratqError(Exception):
    """Base class of every error this client raises on purpose."""


class APIError(StratqError):
    """The API answered with an HTTP error status.

    Attributes: ``status`` (the HTTP status), ``message`` (the API's
    ``error`` text, or the body text when it was not JSON), ``body`` (the
    parsed JSON body, or None), ``headers`` (a dict of the response headers,
    lower-case names), ``method`` and ``url`` of the request.
    """

    def __init__(self, message, status=None, body=None, headers=None, method=None, url=None):
        self.message = message
        self.status = status
        self.body = body
        self.headers = dict(headers or {})
        self.method = method
        self.url = url
        where = f" ({method} {url})" if method and url else ""
        prefix = f"{status} " if status is not None else ""
        super().__init__(f"{prefix}{message}{where}")


# What a 400 message names. The API's messages say "field 'timeout_s' ...",
# "missing required field 'code' ...", "unknown field 'x'; ...", "query
# parameter 'wait' ...", "the Idempotency-Key header ...".
_FIELD_RE = re.compile(r"\b(?:field|parameter) '([^']*)'")
_HEADER_RE = re.compile(r"\bthe ([A-Za-z0-9-]+) header\b")
_JSON_POS_RE = re.compile(r"\bline (\d+), column (\d+)")


class BadRequest(APIError):
    """400 (or 422): the request broke a rule or a limit.

    ``field`` is the spec field, query parameter or header the message
    names (``"timeout_s"``, ``"code"``, ``"wait"``, ``"Idempotency-Key"``),
    or None when it names none (a spec nested too deep, a body that is not
    an object). For malformed JSON, ``line`` and ``column`` give the
    position the API reported (else None).
    """

    def __init__(self, message, *args, **kwargs):
        super().__init__(message, *args, **kwargs)
        m = _FIELD_RE.search(message or "")
        if m is None:
            m = _HEADER_RE.search(message or "")
        self.field = m.group(1) if m else None
        pos = _JSON_POS_RE.search(message or "")
        self.line = int(pos.group(1)) if pos else None
        self.column = int(pos.group(2)) if pos else None


class Unauthorized(APIError):
    """401: authentication is on and the request carried no bearer token
    (give ``Client(token=...)`` or set ``STRATQ_API_TOKEN``)."""


class Forbidden(Unauthorized):
    """403: the bearer token is not one of the API's tokens. A subclass of
    :class:`Unauthorized`, so ``except Unauthorized`` catches both."""


class NotFound(APIError):
    """404: no such job (never existed, or its record expired), or no such
    route (a wrong ``base_url`` path)."""


class MethodNotAllowed(APIError):
    """405: the path exists but not with this method."""


class Conflict(APIError):
    """409: the job is not in a state the request applies to (cancel of a
    finished job; retry of a queued, running or succeeded job)."""


class PayloadTooLarge(APIError):
    """413: the request body is over the API's ``STRATQ_MAX_BODY``."""


def _retry_after(headers):
    value = (headers or {}).get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: not sent by stratq


class TooManyRequests(APIError):
    """429. ``retry_after``: seconds to wait before trying again (from the
    ``Retry-After`` header), or None."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.retry_after = _retry_after(self.headers)


class ServerError(APIError):
    """5xx: the API failed."""


class Unavailable(ServerError):
    """503: Redis is unreachable or slow, or the API serves
    ``STRATQ_MAX_CONNECTIONS`` connections already. ``retry_after``: seconds
    to wait before trying again (from ``Retry-After``), or None. Idempotent
    requests are retried a bounded number of times before this is raised."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.retry_after = _retry_after(self.headers)


class ConnectionFailed(StratqError, ConnectionError):
    """The API could not be reached, or the connection failed before a
    complete answer came (refused, reset, DNS, TLS, no answer within the
    client's ``timeout``). Also a :class:`ConnectionError`. ``url`` is the
    request's URL, ``reason`` the underlying exception.

    A POST that fails this way may or may not have been carried out;
    submit with a ``job_id`` to be able to send it again safely."""

    def __init__(self, message, url=None, reason=None):
        super().__init__(message)
        self.url = url
        self.reason = reason


class WaitTimeout(StratqError, TimeoutError):
    """A wait for a job ran past its ``timeout``; the job goes on. Also a
    :class:`TimeoutError`. ``job_id``, ``status`` (the last status seen)
    and ``timeout`` (seconds)."""

    def __init__(self, job_id, status, timeout):
        super().__init__(f"job {job_id} is still {status} after {timeout:g} s")
        self.job_id = job_id
        self.status = status
        self.timeout = timeout


class JobFailed(StratqError):
    """The job ended in a terminal status other than ``succeeded``
    (``failed``, ``timeout``, ``memory_exceeded``, ``cpu_exceeded``,
    ``output_exceeded``, ``crashed``, ``cancelled``, ``dead``).

    Attributes: ``job_id``; ``status``; ``error`` (the job's ``error``
    object, ``{"type", "message", "traceback"}``, or None);
    ``error_type``, ``error_message``, ``traceback`` (its parts, or None);
    ``job`` (the full job record, with ``stdout``, ``stderr``, ``usage``,
    ``attempts``..., or None if it could not be read).
    """

    def __init__(self, job_id, status, error=None, job=None):
        error = error if isinstance(error, dict) else None
        self.job_id = job_id
        self.status = status
        self.error = error
        self.error_type = error.get("type") if error else None
        self.error_message = error.get("message") if error else None
        self.traceback = error.get("traceback") if error else None
        self.job = job
        text = f"job {job_id} ended {status}"
        if self.error_type or self.error_message:
            text += f": {self.error_type or 'Error'}: {self.error_message or ''}".rstrip()
        super().__init__(text)


class JobNotFinished(StratqError):
    """``result(wait=False)`` of a job that is not terminal yet.
    ``job_id`` and ``status`` (``queued``, ``scheduled`` or ``running``)."""

    def __init__(self, job_id, status):
        super().__init__(f"job {job_id} has not finished (it is {status})")
        self.job_id = job_id
        self.status = status


class BatchError(StratqError):
    """Some specs of :meth:`Client.submit_batch` were refused. The others
    **were enqueued** and run.

    Attributes: ``ids`` (one per spec, in order: the job id, or None for a
    refused spec); ``errors`` (``{index: exception}``, a :class:`BadRequest`
    naming the field for a refused spec); ``items`` (the API's raw items).
    """

    def __init__(self, ids, errors, items):
        self.ids = ids
        self.errors = errors
        self.items = items
        first = min(errors)
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(
            f"{len(errors)} of {len(ids)} specs were refused; spec {first}: {errors[first]}{more}"
        )


_BY_STATUS = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
    409: Conflict,
    413: PayloadTooLarge,
    422: BadRequest,
    429: TooManyRequests,
    503: Unavailable,
}


def error_from_response(status, body, text, headers=None, method=None, url=None):
    """The :class:`APIError` for an error answer: ``body`` is the parsed
    JSON (or None), ``text`` the raw body text."""
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        message = body["error"]
    else:
        message = (text or "").strip() or f"HTTP {status}"
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else APIError
    return cls(message, status=status, body=body, headers=headers, method=method, url=url)
