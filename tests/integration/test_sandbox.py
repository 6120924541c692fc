"""The attack suite (tests/sandbox/): each hostile strategy ends as its
first line says, and the worker then runs a normal job correctly. make test
runs this module in warm and in cold mode."""

from pathlib import Path

import pytest

from conftest import REPO_ROOT

ATTACKS = sorted((Path(REPO_ROOT) / "tests" / "sandbox").glob("*.py"))


def expectation(path):
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name} must start with '# expect: ...'"
    return first.split(": ", 1)[1].strip()


@pytest.fixture(scope="module")
def sandbox_stack(request, tmp_path_factory, redis_server):
    from conftest import Stack

    s = Stack(tmp_path_factory.mktemp("sandbox"), redis_server)
    api = s.start_api().client
    worker = s.start_worker()
    yield s, api, worker
    problems = s.teardown()
    assert not problems, problems


@pytest.fixture(autouse=True)
def r(redis_server):
    # The module shares one stack: no flush between its tests.
    return redis_server.client()


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.stem for a in ATTACKS])
def test_attack(attack, sandbox_stack, redis_server, tmp_path):
    stack, api, worker = sandbox_stack
    victim_dir = tmp_path / "victim-dir"
    victim_dir.mkdir()
    (victim_dir / "keep.txt").write_text("host data")
    victim_file = tmp_path / "victim.txt"
    victim_file.write_text("host data")
    params = {"port": redis_server.port, "victim_file": str(victim_file),
              "victim_dir": str(victim_dir)}
    job = api.wait_job(api.submit({"code": attack.read_text(), "params": params, "timeout_s": 3,
                                   "memory_mb": 512}), timeout=60)
    want = expectation(attack)
    if want == "blocked":
        assert job["status"] == "succeeded", job
        assert job["result"]["blocked"] is True, job["result"]
    else:
        assert job["status"] == want, job
    # Nothing the job did reached the host's files.
    assert victim_file.read_text() == "host data"
    assert (victim_dir / "keep.txt").read_text() == "host data"
    # The same worker goes on and runs a normal job correctly.
    assert worker.alive()
    after = api.wait_job(api.submit({"code": "def run(ctx):\n    return 6 * 7\n"}))
    assert after["status"] == "succeeded" and after["result"] == 42, after
    assert after["worker"] == worker.id
