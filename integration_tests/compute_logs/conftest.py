"""Fixtures for the compute log managers' integration tests: a moto server process and a fake
Cloud Logging server on loopback, an environment that never reaches a real cloud (inherited by
step processes), and the jobs module importable by name in spawned step processes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
# Appended, not first: Dagster drops sys.path[0] when it imports a job's module in a step process.
if str(HERE) not in sys.path:
    sys.path.append(str(HERE))


@pytest.fixture(autouse=True)
def _offline(offline_env: None) -> None:
    """Dummy AWS credentials, no Google credentials (fixtures: integration_tests/conftest)."""
