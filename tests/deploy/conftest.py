"""Shared fixtures of the deployment tests (tests/deploy/).

They check files, not running services: nothing here needs Docker, a
cluster or the network. Run them with

    /usr/bin/python3 -m pytest -q tests/deploy

The JSON schemas used for offline validation live in the steering repo's
shared/schemas/, which sits beside the work tree (../shared); set
STRATQ_SHARED_DIR to point elsewhere.
"""

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("STRATQ_SHARED_DIR", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def repo():
    """The work tree's root."""
    return REPO


@pytest.fixture(scope="session")
def load_schema():
    """load_schema("compose/compose-spec.json") -> the parsed JSON schema
    from shared/schemas/; fails (does not skip) when it is missing, so that a
    check cannot pass by not running."""

    def load(rel):
        path = SHARED / "schemas" / rel
        if not path.is_file():
            pytest.fail(f"schema {path} not found: the deployment tests need the steering "
                        f"repo's shared/ beside the work tree, or STRATQ_SHARED_DIR")
        return json.loads(path.read_text())

    return load
