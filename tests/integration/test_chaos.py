"""The chaos suite, short: ~300 jobs while workers and executors are
SIGKILLed every 0.7-1.5 s and redis-server is restarted once.

The full run is `make chaos` (tests/chaos/chaos.py); this calls the same
``run`` with the sanitized binary. It starts its own redis-server (with AOF,
which a restart needs), so it does not use the session's Redis.
"""

import sys

import pytest

from conftest import REPO_ROOT, STRATQ_BIN, require_binary

sys.path.insert(0, str(REPO_ROOT / "tests" / "chaos"))
import chaos  # noqa: E402


@pytest.fixture
def r():
    """Overrides the autouse FLUSHALL fixture: this test has its own Redis."""
    yield None


def test_chaos_short(tmp_path):
    require_binary()
    c = chaos.run(
        binary=str(STRATQ_BIN),
        short=300,
        long=6,
        kill_min=0.7,
        kill_max=1.5,
        redis_restarts=1,
        deadline=150,
        workdir=tmp_path,
        verbose=False,
    )
    table = chaos.format_table(c)
    assert not c["violations"], "chaos violations:\n" + "\n".join(c["violations"]) + "\n" + table
    # The properties, restated so that a regression in the checker shows too.
    assert c["jobs"] == 306 and c["job_hashes"] == 306, table
    assert c["succeeded"] == 306 and c["missing"] == 0 and c["wrong_results"] == 0, table
    assert c["redis_restarts"] == 1, table
    assert c["kills"] > 0, table
    assert c["extra_runs"] <= c["kills"], table
    assert c["jobs_run_more_than_once"] <= c["kills"], table
