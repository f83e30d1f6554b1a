"""CloudWatchHandler used the way watchtower users use ``CloudWatchLogHandler``, against a moto
server on loopback: a handler added to ``logging.getLogger(...)``, dicts logged as messages, a
``logging.Formatter`` on the handler, and ``dictConfig`` naming a formatter."""

from __future__ import annotations

import logging
import logging.config
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

from dagster_logship import CloudWatchHandler
from dagster_logship.testing import read_events

REGION = "us-east-1"


@pytest.fixture
def app_logger() -> Iterator[logging.Logger]:
    """A named logger from logging's registry, as application code gets one."""
    logger = logging.getLogger(f"app.{uuid.uuid4().hex[:8]}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()


def _handler(endpoint: str, **kwargs: Any) -> CloudWatchHandler:
    tag = uuid.uuid4().hex[:10]
    return CloudWatchHandler(
        log_group_name=f"/test/watchtower/{tag}",
        log_stream_name=f"stream-{tag}",
        aws_region=REGION,
        endpoint_url=endpoint,
        flush_interval=0.05,
        flush_timeout=10.0,
        retry_initial_backoff=0.01,
        retry_deadline=10.0,
        **kwargs,
    )


def _events(handler: CloudWatchHandler, endpoint: str) -> list[dict[str, Any]]:
    assert handler.flush(10)
    return read_events(
        handler.log_group_name, handler.log_stream_name, endpoint_url=endpoint, flush=False
    )


def test_dict_messages_ship_as_fields(moto_endpoint: str, app_logger: logging.Logger) -> None:
    handler = _handler(moto_endpoint)
    app_logger.addHandler(handler)
    when = datetime(2026, 11, 21, 9, 8, 43, 882372, tzinfo=timezone.utc)
    app_logger.info({"event": "x", "n": 1, "when": when})
    app_logger.warning({"message": "user signed in", "user": "ann", "level": "high"})
    app_logger.info("plain text after")

    events = _events(handler, moto_endpoint)
    assert [(e["level"], e["message"]) for e in events] == [
        ("INFO", '{"event":"x","n":1,"when":"2026-11-21T09:08:43.882372+00:00"}'),
        ("WARNING", "user signed in"),
        ("INFO", "plain text after"),
    ]
    first, second, third = events
    assert (first["event"], first["n"], first["when"]) == (
        "x",
        1,
        "2026-11-21T09:08:43.882372+00:00",
    )
    assert first["logger"] == app_logger.name
    assert second["user"] == "ann"
    assert second["extra_level"] == "high"  # a schema field's name: as extra= fields get it
    assert second["level"] == "WARNING"
    assert "event" not in third


def test_a_dict_changed_after_the_call_ships_as_it_was(
    moto_endpoint: str, app_logger: logging.Logger
) -> None:
    handler = _handler(moto_endpoint)
    app_logger.addHandler(handler)
    payload: dict[str, Any] = {"step": 1}
    app_logger.info(payload)
    payload["step"] = 2
    app_logger.info(payload)
    assert [e["step"] for e in _events(handler, moto_endpoint)] == [1, 2]


def test_set_formatter_shapes_the_message(moto_endpoint: str, app_logger: logging.Logger) -> None:
    handler = _handler(moto_endpoint)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    app_logger.addHandler(handler)
    app_logger.info("hello %s", "world")
    app_logger.error("disk %d%% full", 97, extra={"disk": "/dev/sda"})
    app_logger.info({"event": "x"})

    events = _events(handler, moto_endpoint)
    assert [(e["level"], e["message"]) for e in events] == [
        ("INFO", "INFO: hello world"),
        ("ERROR", "ERROR: disk 97% full"),
        ("INFO", "INFO: {'event': 'x'}"),  # what the formatter made of the dict
    ]
    assert events[1]["disk"] == "/dev/sda"
    assert events[2]["event"] == "x"  # the dict's fields still ship
    assert events[0]["source"]["function"] == "test_set_formatter_shapes_the_message"


def test_dictconfig_with_a_formatter(moto_endpoint: str) -> None:
    name = f"app.dictconfig.{uuid.uuid4().hex[:8]}"
    tag = uuid.uuid4().hex[:10]
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"brief": {"format": "%(name)s | %(levelname)s | %(message)s"}},
            "handlers": {
                "cloudwatch": {
                    "class": "dagster_logship.CloudWatchHandler",
                    "formatter": "brief",
                    "log_group_name": f"/test/watchtower/{tag}",
                    "log_stream_name": f"stream-{tag}",
                    "aws_region": REGION,
                    "endpoint_url": moto_endpoint,
                    "flush_interval": 0.05,
                    "flush_timeout": 10.0,
                }
            },
            "loggers": {name: {"handlers": ["cloudwatch"], "level": "INFO", "propagate": False}},
        }
    )
    logger = logging.getLogger(name)
    (handler,) = logger.handlers
    assert isinstance(handler, CloudWatchHandler)
    try:
        logger.info("one")
        logger.warning("two", extra={"n": 2})
        events = _events(handler, moto_endpoint)
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert [e["message"] for e in events] == [f"{name} | INFO | one", f"{name} | WARNING | two"]
    assert events[1]["n"] == 2


class _Broken(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        raise RuntimeError("formatter bug")


def test_a_formatter_that_raises_never_reaches_the_caller(
    moto_endpoint: str, app_logger: logging.Logger, capfd: pytest.CaptureFixture[str]
) -> None:
    handler = _handler(moto_endpoint)
    handler.setFormatter(_Broken())
    app_logger.addHandler(handler)
    app_logger.info("first %d", 1)
    app_logger.info("second")
    events = _events(handler, moto_endpoint)
    assert [e["message"] for e in events] == ["first 1", "second"]
    err = capfd.readouterr().err
    assert err.count("formatter bug") == 1  # reported once
    assert "unformatted message" in err
