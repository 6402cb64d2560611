"""Make the repository root importable when pytest runs without it on ``sys.path``.

Stopgap until ``pythonpath = ["."]`` is set under ``[tool.pytest.ini_options]`` (or the
project is installed in the virtualenv); harmless once it is.
"""

from __future__ import annotations

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[3])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)
