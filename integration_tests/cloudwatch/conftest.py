"""Fixtures for the CloudWatch integration tests: one moto server process on loopback for the
session, dummy credentials in the environment (inherited by step subprocesses), and the jobs
module importable by name so the multiprocess executor can load it again in each step."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from support import offline_cloud_env

from dagster_logship.testing import moto_server

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Dummy credentials and no user AWS config: never real AWS, in this process or children."""
    offline_cloud_env(monkeypatch, tmp_path)


@pytest.fixture(scope="session")
def cw_jobs() -> ModuleType:
    """``cw_jobs`` imported by its own name (spawned step processes inherit ``sys.path``).

    Appended, not prepended: Dagster drops ``sys.path[0]`` (taken for the script's directory)
    when it imports a job's module in a step process.
    """
    if str(HERE) not in sys.path:
        sys.path.append(str(HERE))
    return importlib.import_module("cw_jobs")


@pytest.fixture
def logs_client(moto_endpoint: str) -> Any:
    import boto3

    def make(region: str) -> Any:
        return boto3.session.Session().client(
            "logs", region_name=region, endpoint_url=moto_endpoint,
            aws_access_key_id="testing", aws_secret_access_key="testing",
        )

    return make
