"""Fixtures every integration test directory uses; a directory's own conftest holds only what is
specific to it (and overrides none of these, bar ``offline_credentials``).

- ``offline_env`` (autouse, every test): never a real cloud, in this process and the processes
  a test starts: dummy AWS keys (``offline_credentials``), no user AWS or Google configuration,
  no instance metadata, no Google credentials.
- ``moto_endpoint``: one moto server process for the whole session (starting one costs about a
  second; most modules need one). Tests write to log groups or streams of their own (a uuid, or a
  fixed name no other test uses, or a stream named by run id) and read back only those, or
  filter by run id. A module that reads a whole stream others also write to marks itself
  ``own_moto_server`` and gets a server of its own for the module.
- ``gcp_server``: a fake Cloud Logging server (in this process, cheap) shared by the module, so
  module-scoped fixtures (a run read by several tests) can use it; ``fresh_gcp_server``: one for
  the test alone, for tests that inject faults or count the requests the server received.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support import ListingFakeCloudLogging, offline_cloud_env

from dagster_logship.testing import moto_server


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "own_moto_server: the module's moto_endpoint is a moto server of its own, not the "
        "session's (for a module that reads back streams other modules write to)",
    )


@pytest.fixture(scope="session")
def _session_moto_endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture(scope="module")
def moto_endpoint(request: pytest.FixtureRequest) -> Iterator[str]:
    """The session's moto server, or one of the module's own if it is marked ``own_moto_server``."""
    if request.node.get_closest_marker("own_moto_server") is None:
        yield request.getfixturevalue("_session_moto_endpoint")
        return
    with moto_server() as url:
        yield url


@pytest.fixture(scope="module")
def gcp_server() -> Iterator[ListingFakeCloudLogging]:
    with ListingFakeCloudLogging() as server:
        yield server


@pytest.fixture
def fresh_gcp_server() -> Iterator[ListingFakeCloudLogging]:
    with ListingFakeCloudLogging() as server:
        yield server


@pytest.fixture
def offline_credentials() -> dict[str, str]:
    """Keyword arguments of ``offline_cloud_env`` (AWS keys); the defaults unless a directory
    overrides this fixture."""
    return {}


@pytest.fixture(autouse=True)
def offline_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, offline_credentials: dict[str, str]
) -> None:
    """Dummy AWS credentials, no Google credentials, in this process and its children."""
    offline_cloud_env(monkeypatch, tmp_path, **offline_credentials)
