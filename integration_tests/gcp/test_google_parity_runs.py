"""Real Dagster runs, logging the way users of google-cloud-logging do: ``context.log`` inside
an OpenTelemetry span, with ``labels``/``http_request``/``json_fields`` extras, and an op that
fails. With ``gcp_logger`` against the fake server, and ``json_console_logger`` with
``format: gcp`` on stdout."""

import json
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterInstance, OpExecutionContext, job, op
from opentelemetry.sdk.trace import TracerProvider

from dagster_logship import flush_all, json_console_logger
from dagster_logship.loggers import _relay
from dagster_logship.loggers.gcp import gcp_logger
from dagster_logship.sinks.gcp_format import ERROR_EVENT_TYPE
from dagster_logship.testing import FakeCloudLogging

TRACER = TracerProvider().get_tracer("parity-runs")
HTTP_REQUEST = {"requestMethod": "POST", "requestUrl": "https://api.example.com/orders",
                "status": 201, "latency": "0.042s"}  # fmt: skip
#: (trace id, span id) of the span each run's op opened, by run_id
SPANS: dict[str, tuple[str, str]] = {}


@op
def traced(context: OpExecutionContext) -> None:
    with TRACER.start_as_current_span("traced-op") as span:
        span_context = span.get_span_context()
        SPANS[context.run_id] = (
            format(span_context.trace_id, "032x"),
            format(span_context.span_id, "016x"),
        )
        context.log.info("inside the span")  # relayed by Dagster without extras
        context.log.info("labelled", extra={
            "labels": {"table": "orders", "step_key": "custom"},
            "http_request": HTTP_REQUEST,
            "json_fields": {"rows": 3},
        })  # fmt: skip
    context.log.info("after the span")


@op
def explodes(context: OpExecutionContext) -> None:
    context.log.info("about to fail")
    raise ValueError("op exploded")


@job(logger_defs={"gcp": gcp_logger})
def parity_job() -> None:
    traced()


@job(logger_defs={"gcp": gcp_logger})
def failing_job() -> None:
    explodes()


@job(logger_defs={"json": json_console_logger})
def stdout_job() -> None:
    traced()


@pytest.fixture
def relayed(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The snapshots RelayLogger made without a LogRecord."""
    made: list[Any] = []
    real = _relay.relayed_snapshot

    def spy(*args: Any) -> Any:
        snap = real(*args)
        made.append(snap)
        return snap

    monkeypatch.setattr(_relay, "relayed_snapshot", spy)
    return made


def test_trace_labels_and_http_request_in_a_run(
    fresh_gcp_server: FakeCloudLogging,
    instance: DagsterInstance,
    it: Any,
    tmp_path: Path,
    relayed: list[Any],
) -> None:
    result = parity_job.execute_in_process(
        run_config=it.logger_config(fresh_gcp_server, tmp_path / "spill", log_level="INFO"),
        instance=instance,
    )
    assert result.success
    it.flush_here()
    run_id = result.run_id
    trace_id, span_id = SPANS[run_id]
    entries = {
        e["jsonPayload"]["message"]: e
        for e in fresh_gcp_server.entries()
        if e["jsonPayload"]["run_id"] == run_id and e["jsonPayload"]["event_type"] is None
    }
    trace = f"projects/{it.PROJECT}/traces/{trace_id}"
    base_labels = {"run_id": run_id, "job_name": "parity_job", "step_key": "traced",
                   "suite": "integration"}  # fmt: skip

    inside = entries["inside the span"]
    assert (inside["trace"], inside["spanId"], inside["traceSampled"]) == (trace, span_id, True)
    assert inside["labels"] == base_labels
    # taken by RelayLogger's shortcut, which captured the span too
    assert any(s is not None and s[4] == "inside the span" for s in relayed)

    labelled = entries["labelled"]
    assert (labelled["trace"], labelled["spanId"]) == (trace, span_id)
    assert labelled["labels"] == {**base_labels, "table": "orders", "step_key": "custom"}
    assert labelled["httpRequest"] == HTTP_REQUEST
    payload = labelled["jsonPayload"]
    assert payload["rows"] == 3
    assert not {"labels", "http_request", "json_fields"} & payload.keys()
    assert (payload["otelTraceID"], payload["otelSpanID"]) == (trace_id, span_id)

    after = entries["after the span"]
    assert not {"trace", "spanId", "traceSampled"} & after.keys()
    assert after["labels"] == base_labels


def test_step_failure_reaches_error_reporting(
    fresh_gcp_server: FakeCloudLogging, instance: DagsterInstance, it: Any, tmp_path: Path
) -> None:
    result = failing_job.execute_in_process(
        run_config=it.logger_config(fresh_gcp_server, tmp_path / "spill", log_level="INFO"),
        instance=instance,
        raise_on_error=False,
    )
    assert not result.success
    it.flush_here()
    entries = [
        e for e in fresh_gcp_server.entries() if e["jsonPayload"]["run_id"] == result.run_id
    ]
    (failure,) = [e for e in entries if e["jsonPayload"]["event_type"] == "STEP_FAILURE"]
    payload = failure["jsonPayload"]
    assert failure["severity"] == "ERROR"
    assert payload["@type"] == ERROR_EVENT_TYPE
    stack = payload["stack_trace"]
    # Python's own layout: the user's error first, then Dagster's, which it caused
    assert stack.startswith("Traceback (most recent call last):\n")
    assert 'raise ValueError("op exploded")' in stack
    assert "ValueError: op exploded\n" in stack
    assert "\nThe above exception was the direct cause of the following exception:\n\n" in stack
    assert (
        stack.rstrip()
        .splitlines()[-1]
        .startswith("dagster._core.errors.DagsterExecutionStepExecutionError")
    )
    assert payload["exception"]["type"] == "DagsterExecutionStepExecutionError"
    assert "Stack Trace:" in payload["exception"]["traceback"]  # the schema's text, kept
    ordinary = [e for e in entries if e["jsonPayload"]["message"] == "about to fail"]
    assert ordinary and "@type" not in ordinary[0]["jsonPayload"]


def test_stdout_format_gcp_in_a_run(capfd: pytest.CaptureFixture[str]) -> None:
    result = stdout_job.execute_in_process(
        run_config={"loggers": {"json": {"config": {"format": "gcp", "flush_timeout": 10}}}}
    )
    assert result.success
    assert flush_all(10)
    out = capfd.readouterr().out
    lines = {}
    for text in out.splitlines():
        if text.startswith("{"):
            line = json.loads(text)
            if line.get("run_id") == result.run_id and line.get("event_type") is None:
                lines[line["message"]] = line
    trace_id, span_id = SPANS[result.run_id]
    labelled = lines["labelled"]
    # no GOOGLE_CLOUD_PROJECT (the conftest removes it): the bare trace id
    assert labelled["logging.googleapis.com/trace"] == trace_id
    assert labelled["logging.googleapis.com/spanId"] == span_id
    assert labelled["logging.googleapis.com/trace_sampled"] is True
    assert labelled["logging.googleapis.com/labels"] == {
        "run_id": result.run_id,
        "job_name": "stdout_job",
        "step_key": "custom",
        "table": "orders",
    }
    assert labelled["httpRequest"] == HTTP_REQUEST
    assert labelled["rows"] == 3
    assert not {"labels", "http_request", "json_fields"} & labelled.keys()
    assert lines["inside the span"]["logging.googleapis.com/trace"] == trace_id
    assert "logging.googleapis.com/trace" not in lines["after the span"]
