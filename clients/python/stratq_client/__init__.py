"""stratq_client: a small, standard-library-only client of the stratq HTTP
API, for backends that submit Python strategy jobs and read their results.

    from pathlib import Path
    from stratq_client import Client, JobFailed

    client = Client("http://127.0.0.1:8080")        # or $STRATQ_API_URL, $STRATQ_API_TOKEN
    job_id = client.submit(Path("strategies/ma.py"), params={"fast": 10})
    try:
        print(client.result(job_id, timeout=120))
    except JobFailed as e:
        print(e.status, e.error_type, e.error_message)

This package talks to the API from outside; it is unrelated to the
``stratq`` package that strategies import inside their jobs (neither
imports the other). See README.md next to this package for the whole API.
"""

from .client import (
    DEFAULT_URL,
    MAX_BATCH,
    MAX_WAIT_S,
    STATUSES,
    TERMINAL_STATUSES,
    Client,
    __version__,
    job_spec,
)
from .errors import (
    APIError,
    BadRequest,
    BatchError,
    Conflict,
    ConnectionFailed,
    Forbidden,
    JobFailed,
    JobNotFinished,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ServerError,
    StratqError,
    TooManyRequests,
    Unauthorized,
    Unavailable,
    WaitTimeout,
)

__all__ = [
    "Client",
    "job_spec",
    "DEFAULT_URL",
    "MAX_BATCH",
    "MAX_WAIT_S",
    "STATUSES",
    "TERMINAL_STATUSES",
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
    "__version__",
]
