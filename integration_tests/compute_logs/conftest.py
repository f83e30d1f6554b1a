"""Fixtures for the compute log managers' integration tests: a moto server process and a fake
Cloud Logging server on loopback, an environment that never reaches a real cloud (inherited by
step processes), and the jobs module importable by name in spawned step processes."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import offline_cloud_env

from dagster_logship.testing import FakeCloudLogging, moto_server

HERE = Path(__file__).resolve().parent
# Appended, not first: Dagster drops sys.path[0] when it imports a job's module in a step process.
if str(HERE) not in sys.path:
    sys.path.append(str(HERE))


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture(scope="module")
def gcp_server() -> Iterator[FakeCloudLogging]:
    with FakeCloudLogging() as server:
        yield server


@pytest.fixture(autouse=True)
def offline_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Dummy AWS credentials, no Google credentials, in this process and its children."""
    offline_cloud_env(monkeypatch, tmp_path)
