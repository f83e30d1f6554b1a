"""Fixtures every integration test directory may use: a moto server process and a fake Cloud
Logging server on loopback for the module, and an environment that never reaches a real cloud
(dummy AWS keys, no Google credentials), inherited by the processes a test starts. A directory's
own conftest may define a fixture of the same name; the nearest one is used."""

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
    with FakeCloudLogging() as server:
        yield server


@pytest.fixture
def offline_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Dummy AWS credentials, no Google credentials, in this process and its children."""
    offline_cloud_env(monkeypatch, tmp_path)
