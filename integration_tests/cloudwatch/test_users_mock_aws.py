"""The users' own test patterns, with our logger and no ``flush_all``.

dagster-aws's logger test runs a job inside ``with mock_aws():`` and reads the stream right after
``execute_in_process`` returns; users copy it, several tests in a row, each with a fresh mock.
Our loggers deliver what they hold when the run ends, so the read finds every record; a record
never goes anywhere but the endpoint in force when the logger was built (not real AWS after the
mock ended, not into the next test's mock). A guard refuses and records every lookup or
connection to a host that is not loopback.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from dagster import execute_job, job, op, reconstructable
from dagster._core.test_utils import instance_for_test
from moto import mock_aws
from support import guard_remote_connections

from dagster_logship import CloudWatchHandler, cloudwatch_logger
from dagster_logship.testing import read_events

# As in dagster-aws's own test of its logger.
GROUP = "/dagster-test/test-cloudwatch-logging"
STREAM = "test-logging"
REGION = "us-west-1"


@op
def hello_cloudwatch(context) -> None:  # type: ignore[no-untyped-def]
    context.log.info("Hello, Cloudwatch!")
    context.log.error("This is an error")


@job(logger_defs={"cloudwatch": cloudwatch_logger})
def hello_cloudwatch_job() -> None:
    hello_cloudwatch()


@op
def fails(context) -> None:  # type: ignore[no-untyped-def]
    context.log.info("about to fail")
    raise ValueError("boom")


@job(logger_defs={"cloudwatch": cloudwatch_logger})
def failing_job() -> None:
    fails()


def run_config(**extra: Any) -> dict[str, Any]:
    # flush_interval: far longer than a run, so only the run's end can have sent the records.
    config = {
        "log_group_name": GROUP,
        "log_stream_name": STREAM,
        "aws_region": REGION,
        "flush_interval": 60.0,
        **extra,
    }
    return {"loggers": {"cloudwatch": {"config": config}}}


@pytest.fixture
def remote_attempts(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    attempts = guard_remote_connections(monkeypatch)
    yield attempts
    assert attempts == [], f"tried to reach a non-loopback host: {attempts}"


def read_stream(client: Any) -> list[dict[str, Any]]:
    events = client.get_log_events(logGroupName=GROUP, logStreamName=STREAM, startFromHead=True)
    return [json.loads(event["message"]) for event in events["events"]]


@pytest.mark.parametrize("attempt", [1, 2, 3])
def test_dagster_aws_test_pattern_reads_right_after_the_run(
    attempt: int, remote_attempts: list[str]
) -> None:
    """Three tests in a row, each its own mock: exactly this run's two records, in order (a
    record left over from the test before would show up here, or raise ResourceAlreadyExists)."""
    with mock_aws():
        client = boto3.client("logs", REGION)
        client.create_log_group(logGroupName=GROUP)
        client.create_log_stream(logGroupName=GROUP, logStreamName=STREAM)
        result = hello_cloudwatch_job.execute_in_process(run_config=run_config())
        arrived = read_stream(client)
    assert result.success
    assert [(e["run_id"], e["level"], e["message"]) for e in arrived] == [
        (result.run_id, "INFO", "Hello, Cloudwatch!"),
        (result.run_id, "ERROR", "This is an error"),
    ]


def test_group_and_stream_made_by_the_logger_inside_the_mock(remote_attempts: list[str]) -> None:
    """Without creating anything first (our logger creates them), at DEBUG: every Dagster event
    of the run up to RUN_SUCCESS is there when execute_in_process returns."""
    with mock_aws():
        client = boto3.client("logs", REGION)
        result = hello_cloudwatch_job.execute_in_process(
            run_config=run_config(log_level="DEBUG")
        )
        arrived = read_stream(client)
    assert {e["run_id"] for e in arrived} == {result.run_id}
    assert [e["message"] for e in arrived if e["event_type"] is None] == [
        "Hello, Cloudwatch!",
        "This is an error",
    ]
    kinds = [e["event_type"] for e in arrived if e["event_type"] is not None]
    assert kinds[0] == "RUN_START"
    assert kinds[-1] == "RUN_SUCCESS"
    assert kinds.count("STEP_SUCCESS") == 1


def test_a_failed_run_is_delivered_too(remote_attempts: list[str]) -> None:
    with mock_aws():
        client = boto3.client("logs", REGION)
        result = failing_job.execute_in_process(
            run_config=run_config(log_level="DEBUG"), raise_on_error=False
        )
        arrived = read_stream(client)
    assert not result.success
    assert [e["message"] for e in arrived if e["event_type"] is None] == ["about to fail"]
    failure = [e for e in arrived if e["event_type"] == "STEP_FAILURE"]
    assert len(failure) == 1
    assert "ValueError: boom" in failure[0]["exception"]["traceback"]
    assert arrived[-1]["event_type"] == "RUN_FAILURE"


def _spilled(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _pinned_handler(spill: Path) -> tuple[logging.Logger, CloudWatchHandler]:
    handler = CloudWatchHandler(
        log_group_name=GROUP,
        log_stream_name=STREAM,
        aws_region=REGION,
        flush_interval=60.0,
        spill_path=str(spill),
    )
    log = logging.Logger("test.pinned")  # standalone: nothing propagates to other handlers
    log.addHandler(handler)
    return log, handler


def test_records_left_after_the_mock_ends_never_go_to_real_aws(
    remote_attempts: list[str], tmp_path: Path
) -> None:
    spill = tmp_path / "spill.jsonl"
    with mock_aws():
        log, handler = _pinned_handler(spill)
        log.info("still queued when the mock ends")
    try:
        assert handler.flush(10)
        stats = handler.stats
    finally:
        handler.close()
    assert (stats["delivered"], stats["spilled"]) == (0, 1)
    [line] = _spilled(spill)
    assert line["message"] == "still queued when the mock ends"
    assert "built inside moto's mock_aws, which has ended" in line["logship_spill"]["reason"]
    assert "not sent to real AWS" in line["logship_spill"]["reason"]


def test_records_left_after_the_mock_ends_never_go_into_the_next_mock(
    remote_attempts: list[str], tmp_path: Path
) -> None:
    spill = tmp_path / "spill.jsonl"
    with mock_aws():
        log, handler = _pinned_handler(spill)
        log.info("from the first mock")
    try:
        with mock_aws():
            client = boto3.client("logs", REGION)
            assert handler.flush(10)
            groups = client.describe_log_groups()["logGroups"]
    finally:
        handler.close()
    assert groups == []  # the record did not create our group in the second mock
    [line] = _spilled(spill)
    assert line["message"] == "from the first mock"
    assert "a newer mock is active" in line["logship_spill"]["reason"]


def test_a_logger_built_outside_any_mock_is_not_captured_by_a_later_one(
    moto_endpoint: str, remote_attempts: list[str], tmp_path: Path
) -> None:
    """Built for a real endpoint (here the moto server), it does not send into a mock started
    later: its records are spilled, with the reason, and the mock stays empty."""
    spill = tmp_path / "spill.jsonl"
    handler = CloudWatchHandler(
        log_group_name=GROUP, log_stream_name="outside", aws_region=REGION,
        endpoint_url=moto_endpoint, flush_interval=60.0, spill_path=str(spill),
    )
    log = logging.Logger("test.outside")
    log.addHandler(handler)
    try:
        with mock_aws():
            log.info("meant for the server")
            assert handler.flush(10)
    finally:
        handler.close()
    [line] = _spilled(spill)
    assert "started after this logger was built" in line["logship_spill"]["reason"]


def test_endpoint_variable_is_read_when_the_logger_is_built(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, remote_attempts: list[str]
) -> None:
    """``AWS_ENDPOINT_URL_CLOUDWATCH_LOGS`` set only while the logger is built (a fixture's
    monkeypatch) still decides where its records go at the first send, later."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", moto_endpoint)
    handler = CloudWatchHandler(
        log_group_name=GROUP, log_stream_name="env-pinned", aws_region=REGION,
        flush_interval=60.0,
    )
    monkeypatch.delenv("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS")
    log = logging.Logger("test.env")
    log.addHandler(handler)
    try:
        assert handler.endpoint_url == moto_endpoint
        log.info("to the endpoint of the environment at build time")
        assert handler.flush(10)
    finally:
        handler.close()
    arrived = read_events(GROUP, "env-pinned", endpoint_url=moto_endpoint, region=REGION)
    assert [e["message"] for e in arrived] == ["to the endpoint of the environment at build time"]


def test_multiprocess_run_is_readable_when_execute_job_returns(
    moto_endpoint: str, cw_jobs: ModuleType, remote_attempts: list[str]
) -> None:
    """The multiprocess executor: each step process delivers before it ends, the run worker at
    RUN_SUCCESS; read right after, without flushing anything."""
    config = run_config(endpoint_url=moto_endpoint, log_stream_name="{run_id}")
    config["execution"] = {"config": {"multiprocess": {"max_concurrent": 4}}}
    with instance_for_test() as instance:
        with execute_job(reconstructable(cw_jobs.etl), instance, run_config=config) as result:
            assert result.success
            run_id = result.run_id
        arrived = read_events(
            GROUP, run_id, endpoint_url=moto_endpoint, region=REGION, flush=False
        )
    per_step: dict[str, list[str]] = {}
    for event in arrived:
        if event["event_type"] is None:
            per_step.setdefault(event["step_key"], []).append(event["message"])
    expected = [f"{{}} info {i}" for i in range(cw_jobs.RECORDS_PER_OP)] + [
        "{} warning",
        "{} error: something to page about",
    ]
    for step in ("extract", "transform_a", "load", "report"):
        assert per_step[step] == [m.format(step) for m in expected], step
    assert per_step["transform_b"][: len(expected)] == [
        m.format("transform_b") for m in expected
    ]
    assert len(per_step["transform_b"]) == len(expected) + 1


def test_a_run_whose_backend_is_down_has_disposed_of_its_records_when_it_returns(
    tmp_path: Path, remote_attempts: list[str]
) -> None:
    """Nothing left pending after the run: what could not be delivered within flush_timeout is
    in the spill file, with the reason, as soon as execute_in_process returns."""
    import socket

    with socket.socket() as sock:  # a loopback port nothing listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    spill = tmp_path / "spill.jsonl"
    result = hello_cloudwatch_job.execute_in_process(run_config=run_config(
        endpoint_url=dead, flush_timeout=1.0, spill_path=str(spill)))
    assert result.success
    lines = _spilled(spill)
    assert [line["message"] for line in lines] == ["Hello, Cloudwatch!", "This is an error"]
    # spilled by the run's end (the batch in flight names the last error too)
    for line in lines:
        assert line["logship_spill"]["reason"].startswith(
            "the run ended: not delivered within flush_timeout (1s)"
        )
