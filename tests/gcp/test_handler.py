"""GcpHandler and gcp_logger: configuration, construction without network, credentials and
project resolution at the first send, dictConfig, and what repr shows."""

from __future__ import annotations

import logging
import logging.config
import socket
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from dagster import build_init_logger_context

from dagster_logship import ConfigError
from dagster_logship.handlers.gcp import GcpHandler
from dagster_logship.loggers.gcp import gcp_logger
from dagster_logship.testing import FakeCloudLogging


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record (and refuse) any connection or credential lookup made while it is active."""
    import google.auth

    calls: list[str] = []

    def refuse(what: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            calls.append(what)
            raise AssertionError(f"{what} during construction")

        return call

    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    monkeypatch.setattr(socket, "create_connection", refuse("socket.create_connection"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("socket.getaddrinfo"))
    monkeypatch.setattr(google.auth, "default", refuse("google.auth.default"))
    return calls


def test_construction_does_no_network(no_network: list[str], tmp_path: Path) -> None:
    started = time.monotonic()
    handlers = [
        GcpHandler(),  # project from the environment: resolved at the first send, not now
        GcpHandler(project="p", api_endpoint="http://10.255.255.1:9"),  # unroutable
        GcpHandler(project="p", log_name="other"),
    ]
    logger = gcp_logger(build_init_logger_context(logger_config={"log_level": "DEBUG"}))
    assert time.monotonic() - started < 2
    assert no_network == []
    assert logger.level == logging.DEBUG
    assert any(isinstance(h, GcpHandler) for h in logger.handlers)
    for handler in handlers:
        assert handler.stats["enqueued"] == 0


def test_unreachable_endpoint_never_blocks_the_caller(spill_path: Path, gcp: Any) -> None:
    handler = GcpHandler(
        project="p", api_endpoint="http://127.0.0.1:9", spill_path=str(spill_path),
        **{**gcp.FAST, "retry_deadline": 0.3},
    )
    logger = gcp.logger_for(handler)
    started = time.monotonic()
    for i in range(200):
        logger.info("r%d", i)
    assert time.monotonic() - started < 0.5  # emit only enqueues
    assert handler.flush(10)
    assert handler.stats["spilled"] == 200
    assert "retries exhausted" in gcp.spilled(spill_path)[0]["logship_spill"]["reason"]
    handler.close()


def test_missing_credentials_one_diagnostic_then_spill(
    spill_path: Path, gcp: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    handler = GcpHandler(log_name=f"l{uuid.uuid4().hex[:6]}", spill_path=str(spill_path),
                         **gcp.FAST)
    logger = gcp.logger_for(handler)
    logger.info("a")
    assert handler.flush(10)
    logger.info("b")
    assert handler.flush(10)
    err = capfd.readouterr().err
    lines = [ln for ln in err.splitlines() if "application-default login" in ln]
    assert len(lines) == 1 and "no Google credentials found" in lines[0]
    assert [s["message"] for s in gcp.spilled(spill_path)] == ["a", "b"]
    handler.close()


def test_endpoint_project_from_environment(
    server: FakeCloudLogging, gcp: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "env-project")
    handler = GcpHandler(api_endpoint=server.url, **gcp.FAST)
    gcp.logger_for(handler).info("x")
    assert handler.flush(10)
    assert server.entries()[0]["logName"] == "projects/env-project/logs/dagster"
    handler.close()


def test_no_project_anywhere(
    server: FakeCloudLogging, gcp: Any, spill_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    handler = GcpHandler(api_endpoint=server.url, spill_path=str(spill_path), **gcp.FAST)
    gcp.logger_for(handler).info("x")
    assert handler.flush(10)
    assert "no Google Cloud project: set `project`" in capfd.readouterr().err
    assert server.requests() == [] and len(gcp.spilled(spill_path)) == 1
    handler.close()


def test_sdk_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "google.cloud.logging", None)
    with pytest.raises(ImportError, match=r"pip install 'dagster-logship\[gcp\]'"):
        GcpHandler(project="p")


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"log_name": "has space"}, "log_name"),
        ({"log_name": "x" * 512}, "log_name"),
        ({"log_name": ""}, "log_name"),
        ({"log_name": "ünicode"}, "log_name"),
        ({"labels": {"n": 1}}, "labels"),
        ({"labels": ["a"]}, "labels"),
        ({"labels": {f"k{i}": "v" for i in range(62)}}, "labels"),
        ({"resource_labels": {"zone": None}}, "resource_labels"),
        ({"resource_type": "has space"}, "resource_type"),
        ({"project": "my/project"}, "project"),
        ({"project": ""}, "project"),
        ({"api_endpoint": "localhost:8080"}, "api_endpoint"),
        ({"api_endpoint": "ftp://host"}, "api_endpoint"),
        ({"flush_interval": 0}, "flush_interval"),
        ({"oversize": "drop"}, "oversize"),
    ],
)
def test_config_errors_name_the_key(kwargs: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as error:
        GcpHandler(**kwargs)
    assert error.value.key == key
    assert str(error.value).startswith(f"{key}: ")


def test_valid_names() -> None:
    for name in ("dagster", "a/b/c", "my-log_name.v2", "x" * 511):
        GcpHandler(project="p", log_name=name).close()


def test_unknown_keyword() -> None:
    with pytest.raises(TypeError, match="log_group_name"):
        GcpHandler(project="p", log_group_name="x")


def test_gcp_logger_config_errors() -> None:
    with pytest.raises(ConfigError) as error:
        gcp_logger(build_init_logger_context(logger_config={"log_name": "bad name"}))
    assert error.value.key == "log_name"
    with pytest.raises(ConfigError) as error:
        gcp_logger(build_init_logger_context(logger_config={"log_level": "LOUD"}))
    assert error.value.key == "log_level"


def test_repr_and_destination_hold_no_secrets() -> None:
    handler = GcpHandler(
        project="p", log_name="app", api_endpoint="http://user:s3cret@127.0.0.1:9",
        level="INFO",
    )
    text = repr(handler) + handler.destination
    assert "s3cret" not in text and "user" not in text
    assert "projects/p/logs/app" in text and "127.0.0.1:9" in text and "INFO" in text
    handler.close()


def test_dict_config(server: FakeCloudLogging, gcp: Any) -> None:
    name = f"dictconfig.{uuid.uuid4().hex[:6]}"
    logging.config.dictConfig({
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {
            "gcp": {
                "class": "dagster_logship.handlers.gcp.GcpHandler",
                "level": "INFO",
                "project": gcp.PROJECT,
                "log_name": "from-dictconfig",
                "labels": {"team": "data"},
                "api_endpoint": server.url,
                **gcp.FAST,
            }
        },
        "loggers": {name: {"handlers": ["gcp"], "level": "DEBUG", "propagate": False}},
    })
    logger = logging.getLogger(name)
    try:
        logger.debug("filtered by the handler's level")
        logger.info("shipped")
        (handler,) = logger.handlers
        assert isinstance(handler, GcpHandler)
        assert handler.flush(10)
        (entry,) = server.entries()
        assert entry["jsonPayload"]["message"] == "shipped"
        assert entry["logName"] == f"projects/{gcp.PROJECT}/logs/from-dictconfig"
        assert entry["labels"] == {"team": "data"}
        # Hosts close handlers that are still attached (dictConfig again, logging.shutdown);
        # a record logged afterwards is still shipped.
        handler.close()
        logger.info("after close")
        assert handler.flush(10)
        assert server.wait_for(2, timeout=10)
    finally:
        for h in list(logger.handlers):
            logger.removeHandler(h)
            h.close()


def test_close_then_reuse(server: FakeCloudLogging, make_handler: Any, gcp: Any) -> None:
    handler = make_handler()
    logger = gcp.logger_for(handler)
    logger.info("one")
    handler.close()
    logger.info("two")
    assert handler.flush(10)
    assert [e["jsonPayload"]["message"] for e in server.entries()] == ["one", "two"]


def test_flush_under_the_logging_lock_does_not_deadlock(
    server: FakeCloudLogging, make_handler: Any, gcp: Any
) -> None:
    """dictConfig closes live handlers while holding logging's lock (Dagster does this for
    every run); the worker may need that lock (SDK imports, logger caches): do not wait."""
    handler = make_handler(flush_interval=10.0)
    gcp.logger_for(handler).info("queued")
    started = time.monotonic()
    with logging._lock:  # type: ignore[attr-defined]
        # As dictConfig does: loggers' level caches are cleared, so urllib3's next log call on
        # the worker thread takes the lock we hold.
        logging.Logger.manager._clear_cache()
        handler.close()
    assert time.monotonic() - started < 1.0
    assert server.wait_for(1, timeout=10)
