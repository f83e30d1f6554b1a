"""``format: dagster_aws`` and ``fail_fast``: the record JSON dagster-aws ships, made when the
record is emitted and never raising; its event timestamp rule; the logger and relay it needs;
the checks made at init only when asked. (Side by side with dagster-aws's own logger:
integration_tests/cloudwatch/test_dagster_aws_dropin.py.)"""

import json
import logging
import random
import sys
import warnings
from datetime import datetime, timedelta
from typing import Any

import pytest
from dagster import build_init_logger_context, job, op

from dagster_logship import cloudwatch_logger
from dagster_logship.handlers.cloudwatch import CloudWatchHandler
from dagster_logship.shipping.options import ConfigError
from dagster_logship.sinks.cloudwatch import DestinationCheckError, _millis
from dagster_logship.sinks.dagster_aws_format import (
    DagsterAwsCloudWatchSink,
    event_seconds,
    record_json,
)
from dagster_logship.testing import read_raw_events

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from dagster_aws.cloudwatch import loggers as dagster_aws_loggers


def millisecond_timestamp(when: datetime) -> int:
    """dagster-aws's event timestamp of a ``log_timestamp`` read as a naive datetime."""
    theirs: Any = dagster_aws_loggers.millisecond_timestamp
    return int(theirs(when))


def a_record(**extra: Any) -> logging.LogRecord:
    return logging.getLogger("t").makeRecord("t", logging.INFO, "f.py", 3, "m %s", ("a",), None,
                                             extra=extra)


def test_record_json_is_dagster_aws_json_when_that_encodes() -> None:
    meta = {"run_id": "r", "log_timestamp": "2026-01-02T03:04:05.678901", "job_tags": {"é": "✓"},
            "dagster_event": None, "orig_message": 'q"\\'}
    record = a_record(dagster_meta=meta, numbers=[1.5, float("nan"), 10**20])
    text = record_json(record.__dict__)
    assert text == json.dumps(record.__dict__, sort_keys=True)  # seven.json.dumps
    assert list(json.loads(text.replace("NaN", "null"))) == sorted(record.__dict__)


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no")

    def __repr__(self) -> str:
        raise RuntimeError("no")


def test_what_dagster_aws_cannot_encode_becomes_text_instead_of_raising() -> None:
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        exc_info = sys.exc_info()
    cycle: list[Any] = []
    cycle.append(cycle)
    values: dict[str, Any] = {
        "when": datetime(2026, 1, 2), "obj": Unprintable(), "exc_info": exc_info,
    }
    for name, value in values.items():
        with pytest.raises((TypeError, ValueError)):
            json.dumps({name: value}, sort_keys=True)  # dagster-aws would lose the record
    decoded = json.loads(record_json(values))
    assert decoded["when"] == "2026-01-02 00:00:00"
    assert decoded["obj"] == "<unprintable Unprintable>"
    kind, message, trace = decoded["exc_info"]
    assert kind == "<class 'ZeroDivisionError'>" and message == "division by zero"
    assert "1 / 0" in trace  # a traceback object: its formatted text
    # Beyond json's reach even with a fallback: rebuilt with marked cycles and string keys.
    assert json.loads(record_json({"c": cycle})) == {"c": ["<cycle>"]}
    assert json.loads(record_json({"k": {1: "a", "b": 2, None: 3}})) == {
        "k": {"1": "a", "b": 2, "null": 3}
    }
    deep: Any = "bottom"
    for _ in range(5000):
        deep = [deep]
    assert "<max depth>" in record_json({"deep": deep})


def test_event_timestamp_follows_dagster_aws_rule() -> None:
    rng = random.Random(3)
    start = datetime(2026, 1, 1)
    micros = [0, 1, 999, 1000, 499_999, 500_000, 999_000, 999_499, 999_500, 999_999]
    stamps = [start + timedelta(seconds=i, microseconds=m) for i, m in enumerate(micros)]
    stamps += [start + timedelta(microseconds=rng.randrange(10**14)) for _ in range(20_000)]
    for when in stamps:
        text = when.strftime("%Y-%m-%dT%H:%M:%S.%f")
        seconds = event_seconds({"dagster_meta": {"log_timestamp": text}, "created": 0.0})
        assert _millis(seconds) == millisecond_timestamp(when), text
    # Dagster omits ".000000" on a whole second: dagster-aws's parser raises there; we read it.
    whole = event_seconds({"dagster_meta": {"log_timestamp": "2026-01-01T00:00:07"}})
    assert _millis(whole) == millisecond_timestamp(datetime(2026, 1, 1, 0, 0, 7))
    # No Dagster metadata (a record from plain logging): the record's creation time.
    assert event_seconds({"created": 1_767_225_600.25}) == 1_767_225_600.25
    assert event_seconds({"dagster_meta": {"log_timestamp": "garbage"}, "created": 5.0}) == 5.0


def test_shipped_json_is_fixed_when_logged_and_user_extras_never_raise(
    logs: Any, make_handler: Any
) -> None:
    handler, logger_ = make_handler(format="dagster_aws")
    assert handler.worker is not None
    assert isinstance(handler.worker.sink, DagsterAwsCloudWatchSink)
    payload = {"state": "before"}
    logger_.info("first %s", "call", extra={"payload": payload, "odd": object()})
    payload["state"] = "after"  # changed after the call: not what ships
    logger_.warning("no dagster_meta here")
    assert handler.flush(10)
    events = read_raw_events(handler.log_group_name, handler.log_stream_name, client=logs)
    first, second = (json.loads(e["message"]) for e in events)
    assert first["payload"] == {"state": "before"}
    assert first["odd"].startswith("<object object at")
    assert first["msg"] == "first %s" and first["args"] == ["call"]
    assert list(first) == sorted(first)
    assert events[0]["timestamp"] == _millis(first["created"])  # no log_timestamp: created
    assert second["levelname"] == "WARNING"


@op
def logs_a_bit(context) -> None:  # type: ignore[no-untyped-def]
    context.log.info("user line")
    try:
        raise ValueError("bad value")
    except ValueError:
        context.log.exception("caught")


@job(logger_defs={"cloudwatch": cloudwatch_logger})
def debug_job() -> None:
    logs_a_bit()


def test_dagster_events_at_debug_all_ship(logs: Any) -> None:
    # dagster-aws raises on DagsterEvents it cannot encode (a run at DEBUG fails) and on a
    # record with an exception; here every record of the run arrives as JSON.
    result = debug_job.execute_in_process(run_config={"loggers": {"cloudwatch": {"config": {
        "log_group_name": "/fmt/debug", "log_stream_name": "s", "aws_region": "us-east-1",
        "format": "dagster_aws", "log_level": "DEBUG", "flush_interval": 0.05,
    }}}})
    assert result.success
    events = [json.loads(e["message"]) for e in read_raw_events("/fmt/debug", "s", client=logs)]
    relayed = [e for e in result.all_events if e.event_type_value != "RUN_SUCCESS"]
    assert len(events) >= len(relayed) + 2
    assert all(e["dagster_meta"]["run_id"] == result.run_id for e in events)
    with_event = [e for e in events if e["dagster_meta"]["dagster_event"] is not None]
    assert {e["dagster_meta"]["orig_message"] for e in events} >= {"user line", "caught"}
    assert len(with_event) >= len(relayed)
    (caught,) = [e for e in events if e["dagster_meta"]["orig_message"] == "caught"]
    assert "ValueError" in caught["exc_info"][0] and "bad value" in caught["exc_info"][1]


def test_dagster_aws_format_takes_the_record_path_json_keeps_the_relay() -> None:
    config = {"log_group_name": "/g", "aws_region": "us-east-1"}
    json_logger = cloudwatch_logger(build_init_logger_context(logger_config=config))
    aws_logger = cloudwatch_logger(
        build_init_logger_context(logger_config={**config, "format": "dagster_aws"})
    )
    (json_handler,) = json_logger.handlers
    (aws_handler,) = aws_logger.handlers
    try:
        assert isinstance(json_handler, CloudWatchHandler)
        assert isinstance(aws_handler, CloudWatchHandler)
        assert json_handler.takes_snapshots(logging.INFO)
        assert not json_handler._emit_overridden  # the inlined record path of handle()
        assert not aws_handler.takes_snapshots(logging.INFO)
        # Both are our logger (it delivers at the run's end); the record it makes names the
        # caller, as dagster-aws's plain logger's does (checked field by field in
        # integration_tests/cloudwatch/test_dagster_aws_dropin.py).
        assert type(aws_logger) is type(json_logger)
    finally:
        json_handler.close()
        aws_handler.close()


def test_format_and_fail_fast_values_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"format: got 'xml'\. Fix: use one of json, dagster_aws"):
        CloudWatchHandler("/g", "s", format="xml")
    with pytest.raises(ConfigError, match="fail_fast"):
        CloudWatchHandler("/g", "s", fail_fast="yes")  # type: ignore[arg-type]


def test_fail_fast_checks_once_at_init(logs: Any, make_handler: Any) -> None:
    logs.create_log_group(logGroupName="/fmt/exists")
    calls: list[str] = []
    real = DagsterAwsCloudWatchSink.check_destination

    def spy(self: Any, attempts: int = 3) -> None:
        calls.append(self.log_group_name)
        real(self, attempts)

    DagsterAwsCloudWatchSink.check_destination = spy  # type: ignore[method-assign]
    try:
        handler, logger_ = make_handler(log_group_name="/fmt/exists", fail_fast=True,
                                        format="dagster_aws")
        for n in range(50):
            logger_.info("line %d", n)
        assert handler.flush(10)
    finally:
        DagsterAwsCloudWatchSink.check_destination = real  # type: ignore[method-assign]
    assert calls == ["/fmt/exists"]  # at init, never per batch
    assert len(read_raw_events("/fmt/exists", handler.log_stream_name, client=logs)) == 50
    with pytest.raises(DestinationCheckError, match="Could not find log group with name /nope"):
        make_handler(log_group_name="/nope", fail_fast=True)


def test_fail_fast_names_a_missing_region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    with pytest.raises(DestinationCheckError, match="no AWS region: set aws_region"):
        CloudWatchHandler("/g", "s", fail_fast=True)
