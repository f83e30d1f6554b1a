"""Fixtures for the process-log tests: a moto server process and a fake Cloud Logging server for
the module, and dummy cloud credentials in this process and its children."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support import offline_cloud_env

from dagster_logship.testing import FakeCloudLogging, moto_server


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture(scope="module")
def gcp_server() -> Iterator[FakeCloudLogging]:
    with FakeCloudLogging() as fake:
        yield fake


@pytest.fixture(autouse=True)
def offline_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Dummy AWS credentials, no Google credentials, in this process and its children."""
    offline_cloud_env(monkeypatch, tmp_path)
