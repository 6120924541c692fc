"""Unit tests of the stratq package that jobs import (python/stratq/).

They need only numpy, pandas and pytest, no build and no Redis:

    /usr/bin/python3 -m pytest -q tests/python
"""

import sys
from pathlib import Path

PYTHON_DIR = Path(__file__).resolve().parents[2] / "python"
if str(PYTHON_DIR) not in sys.path:
    sys.path.insert(0, str(PYTHON_DIR))
