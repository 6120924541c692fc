"""The context object handed to a strategy's entrypoint."""

import time


class Context:
    """What a job knows about itself.

    Attributes:
        job_id: the job's id.
        attempt: 1 for the first run of the job, 2 for its first retry, ...
        params: the ``params`` object of the job spec, as a dict.
        data: the ``data`` value of the job spec (any JSON), or None.
    """

    def __init__(self, job_id, attempt, params, data, timeout_s):
        self.job_id = job_id
        self.attempt = attempt
        self.params = params
        self.data = data
        self._deadline = time.monotonic() + float(timeout_s)

    @property
    def deadline(self):
        """Seconds left before the job is killed for running too long."""
        return max(0.0, self._deadline - time.monotonic())

    def __repr__(self):
        return f"Context(job_id={self.job_id!r}, attempt={self.attempt})"
