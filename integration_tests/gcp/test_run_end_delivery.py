"""Google's users' test habit with our loggers: run the job in-process, read right after.

No ``flush_all``: ``gcp_logger`` and ``json_console_logger`` deliver what they hold when the run
ends (its terminal event), bounded by ``flush_timeout``. ``flush_interval`` is set far longer
than the run, so only the run's end can have sent the entries.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from dagster import job, op

from dagster_logship import gcp_logger, json_console_logger
from dagster_logship.testing import FakeCloudLogging


@op
def greet(context) -> None:  # type: ignore[no-untyped-def]
    context.log.info("Hello")
    context.log.warning("careful")


@op
def explode(context) -> None:  # type: ignore[no-untyped-def]
    context.log.info("about to fail")
    raise RuntimeError("kaput")


@job(logger_defs={"gcp": gcp_logger, "json": json_console_logger})
def greeting() -> None:
    greet()


@job(logger_defs={"gcp": gcp_logger})
def failing() -> None:
    explode()


def gcp_config(server: FakeCloudLogging, **extra: Any) -> dict[str, Any]:
    return {
        "project": "run-end", "api_endpoint": server.url, "flush_interval": 60.0, **extra,
    }


def test_gcp_entries_are_there_when_execute_in_process_returns() -> None:
    with FakeCloudLogging() as server:
        result = greeting.execute_in_process(
            run_config={"loggers": {"gcp": {"config": gcp_config(server, log_level="DEBUG")}}}
        )
        payloads = [e["jsonPayload"] for e in server.entries()]
    assert {p["run_id"] for p in payloads} == {result.run_id}
    assert [p["message"] for p in payloads if p["event_type"] is None] == ["Hello", "careful"]
    assert payloads[-1]["event_type"] == "RUN_SUCCESS"


def test_gcp_entries_of_a_failed_run_are_there_too() -> None:
    with FakeCloudLogging() as server:
        result = failing.execute_in_process(
            run_config={"loggers": {"gcp": {"config": gcp_config(server)}}},
            raise_on_error=False,
        )
        payloads = [e["jsonPayload"] for e in server.entries()]
    assert not result.success
    assert [p["message"] for p in payloads if p["event_type"] is None] == ["about to fail"]
    assert [p["event_type"] for p in payloads if p["event_type"]] == [
        "STEP_FAILURE", "RUN_FAILURE"
    ]


def test_json_lines_are_written_when_execute_in_process_returns(
    capfd: pytest.CaptureFixture[str],
) -> None:
    config = {"log_level": "DEBUG", "flush_interval": 60.0}
    result = greeting.execute_in_process(run_config={"loggers": {"json": {"config": config}}})
    out = capfd.readouterr().out
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    ours = [line for line in lines if line.get("run_id") == result.run_id]
    assert [e["message"] for e in ours if e["event_type"] is None] == ["Hello", "careful"]
    assert ours[-1]["event_type"] == "RUN_SUCCESS"


def test_gcp_logger_says_where_its_entries_go(caplog: pytest.LogCaptureFixture) -> None:
    """To the ``dagster_logship`` Python logger when logging shows it (else on stderr, as the
    CloudWatch tests check): caplog makes where it goes certain, whatever earlier tests set."""
    with caplog.at_level(logging.INFO, logger="dagster_logship"), FakeCloudLogging() as server:
        url = server.url
        greeting.execute_in_process(
            run_config={"loggers": {"gcp": {"config": {
                "project": "announced", "log_name": "runs", "api_endpoint": url}}}}
        )
    lines = [r.getMessage() for r in caplog.records if r.name == "dagster_logship"]
    assert lines == [
        "shipping Dagster logs to Cloud Logging projects/announced/logs/runs: "
        f"endpoint {url} (not Google's own)"
    ]
