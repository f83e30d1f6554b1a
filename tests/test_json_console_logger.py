"""json_console_logger as Dagster's logging docs test their own logger, and its config errors."""

from __future__ import annotations

import io
import json
import logging

import pytest
from dagster import build_init_logger_context

from dagster_logship import ConfigError, JsonStreamHandler, json_console_logger


def test_init_json_console_logger():
    logger_ = json_console_logger(None)
    assert logger_.level == 20
    assert logger_.name == "dagster"


def test_init_json_console_logger_with_context():
    logger_ = json_console_logger(build_init_logger_context(logger_config={"name": "my_logger"}))
    assert logger_.level == 20
    assert logger_.name == "my_logger"


def test_shared_keys_reach_the_handler():
    logger_ = json_console_logger(
        build_init_logger_context(
            logger_config={"log_level": "warning", "flush_interval": 0.5, "overflow": "drop_oldest"}
        )
    )
    (handler,) = logger_.handlers
    assert isinstance(handler, JsonStreamHandler)
    assert logger_.level == logging.WARNING
    assert handler.options.flush_interval == 0.5
    assert handler.options.overflow == "drop_oldest"


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"log_level": "LOUD"}, "log_level"),
        ({"stream": "stdlog"}, "stream"),
        ({"format": "xml"}, "format"),
        ({"overflow": "explode"}, "overflow"),
        ({"flush_interval": -1.0}, "flush_interval"),
        ({"queue_max_records": 0}, "queue_max_records"),
        ({"oversize": "reject"}, "oversize"),
    ],
)
def test_wrong_config_fails_at_init_naming_the_key_and_the_fix(config, key):
    with pytest.raises(ConfigError) as info:
        json_console_logger(build_init_logger_context(logger_config=config))
    message = str(info.value)
    assert message.startswith(f"{key}:")
    assert "Fix:" in message


def test_handler_in_plain_logging_and_dictconfig():
    import logging.config

    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {
                "json": {
                    "class": "dagster_logship.JsonStreamHandler",
                    "stream": "stderr",
                    "format": "gcp",
                    "flush_interval": 0.1,
                }
            },
            "loggers": {"from_dictconfig": {"handlers": ["json"], "level": "INFO"}},
        }
    )
    handler = logging.getLogger("from_dictconfig").handlers[0]
    assert isinstance(handler, JsonStreamHandler)
    assert handler.options.flush_interval == 0.1
    logging.getLogger("from_dictconfig").handlers.clear()
    handler.close()


def test_gcp_format_line(capsys):
    out = io.StringIO()
    handler = JsonStreamHandler(stream=out, format="gcp", flush_timeout=5)
    logger_ = logging.Logger("gcp-format")
    logger_.addHandler(handler)
    logger_.error("disk full", extra={"trace": "projects/p/traces/abc", "span_id": "0001"})
    assert handler.flush(5)
    (line,) = [json.loads(x) for x in out.getvalue().splitlines()]
    assert line["severity"] == "ERROR"
    assert line["message"] == "disk full"
    assert line["logging.googleapis.com/trace"] == "projects/p/traces/abc"
    assert line["logging.googleapis.com/spanId"] == "0001"
    location = line["logging.googleapis.com/sourceLocation"]
    assert location["function"] == "test_gcp_format_line"
    assert int(location["line"]) > 0
    handler.close()
