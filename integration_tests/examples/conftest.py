"""Fixtures for the examples' tests: a moto server process and a fake Cloud Logging server for
the module, a clean environment in this process (step processes inherit it), and the support
module of integration_tests/cli importable by name."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import offline_cloud_env

CLI_TESTS = Path(__file__).resolve().parents[1] / "cli"
if str(CLI_TESTS) not in sys.path:
    sys.path.append(str(CLI_TESTS))

from logship_cli_support import ListingFakeCloudLogging  # noqa: E402

from dagster_logship.testing import moto_server  # noqa: E402


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture(scope="module")
def gcp_server() -> Iterator[ListingFakeCloudLogging]:
    with ListingFakeCloudLogging() as fake:
        yield fake


@pytest.fixture(autouse=True)
def offline_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Dummy AWS credentials, no Google credentials, in this process and its children."""
    offline_cloud_env(monkeypatch, tmp_path)
