"""Log group and stream lifecycle: created when missing (idempotently), again when deleted while
we run; retention and tags on creation; one client per destination per process."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dagster_logship.shipping import read_spill
from dagster_logship.testing import read_events


def messages(logs: Any, handler: Any) -> list[str]:
    return [e["message"] for e in read_events(handler.log_group_name, handler.log_stream_name,
                                              client=logs)]


def test_creates_group_and_stream_with_retention_and_tags(logs: Any, make_handler: Any) -> None:
    handler, logger = make_handler(retention_in_days=14, tags={"team": "data", "env": "test"})
    logger.info("first")
    assert handler.flush(10)

    assert messages(logs, handler) == ["first"]
    (group,) = logs.describe_log_groups(logGroupNamePrefix=handler.log_group_name)["logGroups"]
    assert group["retentionInDays"] == 14
    tags = logs.list_tags_log_group(logGroupName=handler.log_group_name)["tags"]
    assert tags == {"team": "data", "env": "test"}


def test_existing_group_and_stream_are_used_as_they_are(
    logs: Any, make_handler: Any, cw: Any
) -> None:
    group, stream = cw.names()
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName=stream)
    handler, logger = make_handler(log_group_name=group, log_stream_name=stream,
                                   retention_in_days=30)
    requests = cw.record_requests(handler)
    logger.info("hello")
    assert handler.flush(10)

    assert len(requests.attempts) == 1  # no create calls, no second try
    (described,) = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
    assert "retentionInDays" not in described  # not ours: its settings are left alone


def test_existing_group_gets_a_new_stream(logs: Any, make_handler: Any, cw: Any) -> None:
    group, _ = cw.names()
    logs.create_log_group(logGroupName=group)
    handler, logger = make_handler(log_group_name=group)
    logger.info("hello")
    assert handler.flush(10)
    assert messages(logs, handler) == ["hello"]


def test_group_deleted_mid_run_is_created_again(logs: Any, make_handler: Any) -> None:
    handler, logger = make_handler()
    logger.info("before")
    assert handler.flush(10)
    logs.delete_log_group(logGroupName=handler.log_group_name)

    logger.info("after")
    assert handler.flush(10)
    assert messages(logs, handler) == ["after"]  # "before" went with the deleted group
    assert handler.stats["delivered"] == 2 and handler.stats["spilled"] == 0


def test_stream_deleted_mid_run_is_created_again(logs: Any, make_handler: Any) -> None:
    handler, logger = make_handler()
    logger.info("before")
    assert handler.flush(10)
    logs.delete_log_stream(logGroupName=handler.log_group_name,
                           logStreamName=handler.log_stream_name)

    logger.info("after")
    assert handler.flush(10)
    assert messages(logs, handler) == ["after"]
    assert handler.stats["spilled"] == 0


def test_creation_race_already_exists_counts_as_success(
    server_logs: Any, moto_endpoint: str, make_handler: Any, cw: Any
) -> None:
    handler, logger = make_handler(endpoint_url=moto_endpoint)
    # Another process made the group and stream between our failed put and our create call.
    server_logs.create_log_group(logGroupName=handler.log_group_name)

    race = cw.Fault("ResourceAlreadyExistsException", 400, times=1)

    def made_elsewhere(request: Any, **_: Any) -> Any:
        server_logs.create_log_stream(logGroupName=handler.log_group_name,
                                      logStreamName=handler.log_stream_name)
        return race(request)

    cw.sink_of(handler).client().meta.events.register_first(
        "before-send.cloudwatch-logs.CreateLogStream", made_elsewhere
    )
    logger.info("hello")
    assert handler.flush(10)
    assert race.failed == 1
    assert messages(server_logs, handler) == ["hello"]
    assert handler.stats["spilled"] == 0


def test_missing_group_without_create_is_one_diagnostic_and_spill(
    logs: Any, make_handler: Any, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    spill = tmp_path / "spill.jsonl"
    handler, logger = make_handler(create_log_group=False, spill_path=str(spill))
    logger.info("one")
    assert handler.flush(10)
    logger.info("two")
    assert handler.flush(10)

    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "create_log_group is false" in line]
    assert len(lines) == 1
    assert handler.log_group_name in lines[0]
    assert [e["message"] for e in read_spill(spill)] == ["one", "two"]
    assert not logs.describe_log_groups(logGroupNamePrefix=handler.log_group_name)["logGroups"]


def test_missing_stream_without_create_is_rejected(
    logs: Any, make_handler: Any, cw: Any, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    group, _ = cw.names()
    logs.create_log_group(logGroupName=group)
    spill = tmp_path / "spill.jsonl"
    handler, logger = make_handler(log_group_name=group, create_log_stream=False,
                                   spill_path=str(spill))
    logger.info("one")
    assert handler.flush(10)
    assert "create_log_stream is false" in capsys.readouterr().err
    assert [e["message"] for e in read_spill(spill)] == ["one"]


def test_retention_denied_is_reported_once_and_events_still_delivered(
    server_logs: Any, moto_endpoint: str, make_handler: Any, cw: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    handler, logger = make_handler(endpoint_url=moto_endpoint, retention_in_days=7)
    cw.inject(handler, "PutRetentionPolicy", cw.Fault("AccessDeniedException", 400, times=5))
    logger.info("kept")
    assert handler.flush(10)

    err = capsys.readouterr().err
    assert err.count("logs:PutRetentionPolicy") == 1
    assert messages(server_logs, handler) == ["kept"]
    assert handler.stats["spilled"] == 0


def test_throttled_retention_is_tried_again_before_the_next_batch(
    server_logs: Any, moto_endpoint: str, make_handler: Any, cw: Any
) -> None:
    handler, logger = make_handler(endpoint_url=moto_endpoint, retention_in_days=90)
    fault = cw.inject(handler, "PutRetentionPolicy", cw.Fault("ThrottlingException", 400, 1))
    logger.info("one")
    assert handler.flush(10)
    (group,) = server_logs.describe_log_groups(
        logGroupNamePrefix=handler.log_group_name)["logGroups"]
    assert "retentionInDays" not in group
    logger.info("two")
    assert handler.flush(10)
    assert fault.sent == 2
    (group,) = server_logs.describe_log_groups(
        logGroupNamePrefix=handler.log_group_name)["logGroups"]
    assert group["retentionInDays"] == 90
    assert messages(server_logs, handler) == ["one", "two"]


def test_one_worker_and_one_client_per_destination(logs: Any, make_handler: Any, cw: Any) -> None:
    group, stream = cw.names()
    first, logger1 = make_handler(log_group_name=group, log_stream_name=stream)
    second, logger2 = make_handler(log_group_name=group, log_stream_name=stream)
    other, _ = make_handler(log_group_name=group, log_stream_name=stream,
                            aws_access_key_id="AKIAOTHER", aws_secret_access_key="x" * 40)
    assert first.worker is second.worker
    assert first.worker is not other.worker
    logger1.info("a")
    logger2.info("b")
    assert first.flush(10) and second.flush(10)
    sink = cw.sink_of(first)
    client = sink.client()
    assert sink.client() is client
    assert sorted(messages(logs, first)) == ["a", "b"]

    sink.after_fork()  # a forked child must not share the parent's connections
    assert sink._client is None
    assert sink.client() is not client
    sink.close()
    assert sink._client is None


def test_botocore_retries_are_off_and_timeouts_modest(make_handler: Any, cw: Any) -> None:
    handler, _ = make_handler()
    config = cw.sink_of(handler).client().meta.config
    assert config.retries["total_max_attempts"] == 1  # botocore: attempts incl. the first
    assert config.retries["mode"] == "standard"
    assert config.connect_timeout <= 10 and config.read_timeout <= 30


def test_events_carry_the_schema(logs: Any, make_handler: Any) -> None:
    handler, logger = make_handler()
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("failed %s", "here", extra={"order_id": 42})
    assert handler.flush(10)
    (event,) = read_events(handler.log_group_name, handler.log_stream_name, client=logs)
    assert event["message"] == "failed here"
    assert event["level"] == "ERROR"
    assert event["order_id"] == 42
    assert event["exception"]["type"] == "ValueError"
    json.dumps(event)
