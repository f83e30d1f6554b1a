"""Fixtures for the compute log managers' tests: a moto server and a fake Cloud Logging server
on loopback, and an environment that never reaches a real cloud."""

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


@pytest.fixture(autouse=True)
def offline_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    offline_cloud_env(monkeypatch, tmp_path)
