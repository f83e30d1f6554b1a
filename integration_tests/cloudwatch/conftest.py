"""Fixtures for the CloudWatch integration tests: the jobs module importable by name so the
multiprocess executor can load it again in each step, and a CloudWatch Logs client (the moto
server and the offline environment: integration_tests/conftest.py)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent


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
