"""The examples' tests import the support module of integration_tests/cli by name (servers and
the offline environment: integration_tests/conftest.py)."""

from __future__ import annotations

import sys
from pathlib import Path

CLI_TESTS = Path(__file__).resolve().parents[1] / "cli"
if str(CLI_TESTS) not in sys.path:
    sys.path.append(str(CLI_TESTS))
