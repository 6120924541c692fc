"""stratq: what a strategy sees inside a job.

A strategy is a module with a function (by default ``run``) that takes a
context and returns a JSON-serializable value::

    def run(ctx):
        return {"answer": ctx.params.get("x", 0) * 2}
"""

from ._backtest import Backtest, backtest
from ._context import Context
from ._metrics import metrics
from ._result import Result

__all__ = ["Backtest", "Context", "Result", "backtest", "metrics"]
