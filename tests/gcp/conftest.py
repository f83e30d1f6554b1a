"""Fixtures for the Cloud Logging unit tests: the fake server, handlers with fast timings, and an
environment in which Google's libraries can never find real credentials."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dagster_logship.handlers.gcp import GcpHandler
from dagster_logship.shipping import read_spill
from dagster_logship.testing import FakeCloudLogging

PROJECT = "test-project"

#: Timings that keep the suite fast: batches leave after 20 ms, retries back off 10-50 ms.
FAST: dict[str, Any] = {
    "flush_interval": 0.02,
    "retry_initial_backoff": 0.01,
    "retry_max_backoff": 0.05,
    "retry_deadline": 10.0,
    "flush_timeout": 10.0,
}


@pytest.fixture(autouse=True)
def no_google_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Application Default Credentials point at a missing file: never real Google Cloud."""
    for key in ("GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT", "GOOGLE_CLOUD_QUOTA_PROJECT"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "no-credentials.json"))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "no-gcloud"))


@pytest.fixture
def server() -> Iterator[FakeCloudLogging]:
    with FakeCloudLogging() as fake:
        yield fake


@pytest.fixture
def spill_path(tmp_path: Path) -> Path:
    return tmp_path / "spill.jsonl"


def spilled(path: Path) -> list[dict[str, Any]]:
    return list(read_spill(path)) if path.exists() else []


MakeHandler = Callable[..., GcpHandler]


@pytest.fixture
def make_handler(server: FakeCloudLogging, spill_path: Path) -> Iterator[MakeHandler]:
    """GcpHandler factory aimed at the fake server, each with its own log (and worker)."""
    made: list[GcpHandler] = []

    def make(**kwargs: Any) -> GcpHandler:
        options: dict[str, Any] = {
            "project": PROJECT,
            "log_name": f"test-{uuid.uuid4().hex[:8]}",
            "api_endpoint": server.url,
            "spill_path": str(spill_path),
            **FAST,
        }
        options.update(kwargs)
        handler = GcpHandler(**options)
        made.append(handler)
        return handler

    yield make
    for handler in made:
        handler.close()


def logger_for(handler: logging.Handler, level: int = logging.DEBUG) -> logging.Logger:
    """A standalone logger (not registered globally) writing only to ``handler``."""
    logger = logging.Logger(f"app.{uuid.uuid4().hex[:6]}", level)
    logger.addHandler(handler)
    return logger


def dagster_meta(**overrides: Any) -> dict[str, Any]:
    """What Dagster attaches to a re-logged record (DESIGN §3), enough for the sink's fields."""
    meta: dict[str, Any] = {
        "run_id": str(uuid.uuid4()),
        "job_name": "etl_job",
        "job_tags": {"team": "data"},
        "step_key": "load",
        "op_name": "load",
        "resource_name": None,
        "dagster_event": None,
        "orig_message": "loaded 3 rows",
        "log_message_id": str(uuid.uuid4()),
        "log_timestamp": "2024-05-01T12:00:00.123456",
    }
    meta.update(overrides)
    return meta


@pytest.fixture
def gcp() -> Any:
    """The helpers above, for tests (conftest modules cannot be imported under importlib mode)."""
    from types import SimpleNamespace

    return SimpleNamespace(
        PROJECT=PROJECT, FAST=FAST, spilled=spilled, logger_for=logger_for,
        dagster_meta=dagster_meta,
    )
