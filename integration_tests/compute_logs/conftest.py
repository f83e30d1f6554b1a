"""The compute log managers' jobs module, importable by name in spawned step processes (the
servers and the offline environment: integration_tests/conftest.py)."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Appended, not first: Dagster drops sys.path[0] when it imports a job's module in a step process.
if str(HERE) not in sys.path:
    sys.path.append(str(HERE))
