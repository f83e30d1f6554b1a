"""The process-log tests run with the offline environment (fixtures: integration_tests/conftest)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _offline(offline_env: None) -> None:
    """Dummy AWS credentials, no Google credentials, in this process and its children."""
