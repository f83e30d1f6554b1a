"""What users of google-cloud-logging's handlers write, and what reaches Cloud Logging: the
``labels``, ``http_request`` and ``json_fields`` extras, trace correlation (explicit extras,
attributes set by instrumentation, the active OpenTelemetry span) and Error Reporting fields.
Through the real client against the fake server (``gcp_logger``'s handler) and through
``JsonStreamHandler(format="gcp")`` (the agents' stdout)."""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
import traceback
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import Tracer

from dagster_logship import JsonStreamHandler
from dagster_logship.sinks.gcp_format import (
    ERROR_EVENT_TYPE,
    TRACEBACK_MOVED,
    http_request_of,
    python_traceback,
)
from dagster_logship.testing import FakeCloudLogging

HTTP_REQUEST = {
    "requestMethod": "GET",
    "requestUrl": "https://example.com/items?id=7",
    "status": 200,
    "userAgent": "curl/8.5",
    "latency": "0.250s",
}


@pytest.fixture
def tracer() -> Tracer:
    """A real SDK tracer (not installed globally: ``start_as_current_span`` sets the context
    whatever the global provider)."""
    return TracerProvider().get_tracer("parity-tests")


@pytest.fixture
def stdout_gcp() -> Iterator[tuple[logging.Logger, JsonStreamHandler, io.StringIO]]:
    out = io.StringIO()
    handler = JsonStreamHandler(stream=out, format="gcp", flush_interval=0.02, flush_timeout=10)
    logger = logging.Logger("stdout-gcp", logging.DEBUG)
    logger.addHandler(handler)
    yield logger, handler, out
    handler.close()


def lines_of(handler: JsonStreamHandler, out: io.StringIO) -> list[dict[str, Any]]:
    assert handler.flush(10)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def ids_of(span: Any) -> tuple[str, str]:
    context = span.get_span_context()
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def raise_boom() -> None:
    raise ValueError("boom")


# -- labels, http_request, json_fields -----------------------------------------------------------


def test_labels_http_request_json_fields_reach_the_entry(
    server: FakeCloudLogging, make_handler: Any, gcp: Any
) -> None:
    handler = make_handler(log_name="parity", labels={"team": "data", "env": "test"})
    logger = gcp.logger_for(handler)
    logger.info(
        "served",
        extra={
            "labels": {"env": "prod", "route": "/items", "attempt": 2, "canary": True},
            "http_request": HTTP_REQUEST,
            "json_fields": {"user": "u1", "items": [1, 2], "message": "dup", "level": "x"},
            "plain": "kept",
        },
    )
    assert handler.flush(10)
    (entry,) = server.entries()
    entry.pop("receiveTimestamp", None)  # the server's own
    payload = entry["jsonPayload"]
    assert entry == {
        "logName": f"projects/{gcp.PROJECT}/logs/parity",
        "resource": {"type": "global", "labels": {"project_id": gcp.PROJECT}},
        "insertId": entry["insertId"],
        "severity": "INFO",
        "timestamp": payload["timestamp"],
        # the record's labels win over the handler's, and are strings
        "labels": {
            "team": "data",
            "env": "prod",
            "route": "/items",
            "attempt": "2",
            "canary": "true",
        },
        "sourceLocation": {
            "file": __file__,
            "line": entry["sourceLocation"]["line"],
            "function": "test_labels_http_request_json_fields_reach_the_entry",
        },
        "httpRequest": HTTP_REQUEST,
        "jsonPayload": payload,
    }
    assert payload == {
        "timestamp": payload["timestamp"],
        "level": "INFO",
        "message": "served",
        "logger": logger.name,
        "orig_message": None,
        "log_message_id": None,
        "run_id": None,
        "job_name": None,
        "step_key": None,
        "op_name": None,
        "event_type": None,
        "pid": payload["pid"],
        "job_tags": None,
        "source": payload["source"],
        "plain": "kept",
        # json_fields merged at the top; names of schema fields get the extra_ prefix
        "user": "u1",
        "items": [1, 2],
        "extra_message": "dup",
        "extra_level": "x",
    }


def test_what_cannot_be_a_label_or_http_request_field_stays_in_the_payload(
    server: FakeCloudLogging, make_handler: Any, gcp: Any
) -> None:
    handler = make_handler()
    logger = gcp.logger_for(handler)
    too_many = {f"k{i:02d}": "v" for i in range(70)}
    logger.info("odd values", extra={
        "labels": {"": "empty key", "k" * 600: "long key", "big": "x" * (70 * 1024),
                   "none": None, "nested": {"a": [1, 2]}, **too_many},
        "http_request": {"request_method": "POST", "status": "404", "latency": 1.5,
                         "response_size": 2048, "cacheHit": "yes", "route": "/a",
                         "remote_ip": None},
    })  # fmt: skip
    logger.info("not mappings", extra={"labels": "a,b", "http_request": "GET /", "json_fields": 7})
    assert handler.flush(10)
    odd, plain = server.entries()
    labels = odd["labels"]
    assert len(labels) == 64  # the service's limit: the rest stay in the payload
    assert labels["none"] == "null" and labels["nested"] == '{"a":[1,2]}'
    left = odd["jsonPayload"]["labels"]
    assert left[""] == "empty key" and left["k" * 600] == "long key"
    assert left["big"] == "x" * (70 * 1024)
    assert len(labels) + len(left) == 3 + 2 + 70  # none lost
    assert odd["httpRequest"] == {
        "requestMethod": "POST",
        "status": 404,
        "latency": "1.5s",
        "responseSize": "2048",
    }
    assert odd["jsonPayload"]["http_request"] == {"cacheHit": "yes", "route": "/a"}
    # values that are not mappings are ordinary fields, as they were
    assert "labels" not in plain and "httpRequest" not in plain
    assert plain["jsonPayload"]["labels"] == "a,b"
    assert plain["jsonPayload"]["http_request"] == "GET /"
    assert plain["jsonPayload"]["json_fields"] == 7


def test_http_request_mapping_rules() -> None:
    from datetime import timedelta

    assert http_request_of({"latency": timedelta(milliseconds=1500), "status": 200.0}) == (
        {"latency": "1.5s", "status": 200},
        None,
    )
    assert http_request_of({"latency": "fast", "status": True, "requestSize": -1}) == (
        None,
        {"latency": "fast", "status": True, "requestSize": -1},
    )
    assert http_request_of(["not", "a", "mapping"]) == (None, None)


# -- trace correlation ---------------------------------------------------------------------------


def test_explicit_trace_extras_come_first(
    server: FakeCloudLogging, make_handler: Any, gcp: Any, tracer: Tracer
) -> None:
    handler = make_handler()
    logger = gcp.logger_for(handler)
    with tracer.start_as_current_span("ignored"):
        logger.info("explicit", extra={
            "trace": "projects/other/traces/0123456789abcdef0123456789abcdef",
            "span_id": "00f067aa0ba902b7", "trace_sampled": False,
        })  # fmt: skip
    assert handler.flush(10)
    (entry,) = server.entries()
    assert entry["trace"] == "projects/other/traces/0123456789abcdef0123456789abcdef"
    assert entry["spanId"] == "00f067aa0ba902b7"
    assert entry["traceSampled"] is False
    assert "otelTraceID" not in entry["jsonPayload"]  # the record named its trace


def test_trace_id_attributes_from_a_record_factory(
    server: FakeCloudLogging, make_handler: Any, gcp: Any
) -> None:
    """dagster-otel style instrumentation sets ``trace_id``/``span_id`` on every record."""
    handler = make_handler()
    logger = gcp.logger_for(handler)
    old_factory = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = old_factory(*args, **kwargs)
        record.trace_id = "4BF92F3577B34DA6A3CE929D0E0E4736"
        record.span_id = 0x00F067AA0BA902B7
        return record

    logging.setLogRecordFactory(factory)
    try:
        logger.warning("from instrumentation")
    finally:
        logging.setLogRecordFactory(old_factory)
    assert handler.flush(10)
    (entry,) = server.entries()
    assert entry["trace"] == f"projects/{gcp.PROJECT}/traces/4bf92f3577b34da6a3ce929d0e0e4736"
    assert entry["spanId"] == "00f067aa0ba902b7"
    assert "traceSampled" not in entry


def test_logging_instrumentor_attributes_from_a_filter(
    server: FakeCloudLogging, make_handler: Any, gcp: Any
) -> None:
    """OpenTelemetry's LoggingInstrumentor sets ``otelTraceID``/``otelSpanID``/
    ``otelTraceSampled``, and "0" outside a span."""
    handler = make_handler()
    logger = gcp.logger_for(handler)
    values = iter([("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", True),
                   ("0", "0", False)])  # fmt: skip

    def instrument(record: logging.LogRecord) -> bool:
        record.otelTraceID, record.otelSpanID, record.otelTraceSampled = next(values)
        record.otelServiceName = "etl"
        return True

    logger.addFilter(instrument)
    logger.info("in a span")
    logger.info("outside any span")
    assert handler.flush(10)
    inside, outside = server.entries()
    assert inside["trace"] == f"projects/{gcp.PROJECT}/traces/0af7651916cd43dd8448eb211c80319c"
    assert inside["spanId"] == "b7ad6b7169203331"
    assert inside["traceSampled"] is True
    assert "trace" not in outside and "spanId" not in outside
    assert outside["traceSampled"] is False


def test_active_span_of_the_callers_thread(
    server: FakeCloudLogging, make_handler: Any, gcp: Any, tracer: Tracer
) -> None:
    handler = make_handler()
    logger = gcp.logger_for(handler)
    other_thread_logged = threading.Event()

    def log_from_another_thread() -> None:
        logger.info("other thread")  # the span is context-local: not this thread's
        other_thread_logged.set()

    with tracer.start_as_current_span("step") as span:
        logger.info("in the span")
        thread = threading.Thread(target=log_from_another_thread)
        thread.start()
        assert other_thread_logged.wait(10)
        thread.join()
    logger.info("after the span")
    assert handler.flush(10)
    by_message = {e["jsonPayload"]["message"]: e for e in server.entries()}
    trace_id, span_id = ids_of(span)
    inside = by_message["in the span"]
    assert inside["trace"] == f"projects/{gcp.PROJECT}/traces/{trace_id}"
    assert inside["spanId"] == span_id
    assert inside["traceSampled"] is True
    assert {
        k: inside["jsonPayload"][k] for k in ("otelTraceID", "otelSpanID", "otelTraceSampled")
    } == {"otelTraceID": trace_id, "otelSpanID": span_id, "otelTraceSampled": True}
    for message in ("other thread", "after the span"):
        entry = by_message[message]
        assert not {"trace", "spanId", "traceSampled"} & entry.keys(), message
        assert "otelTraceID" not in entry["jsonPayload"]


def test_non_recording_span_gives_no_trace(
    server: FakeCloudLogging, make_handler: Any, gcp: Any
) -> None:
    handler = make_handler()
    logger = gcp.logger_for(handler)
    with TracerProvider(sampler=ALWAYS_OFF).get_tracer("off").start_as_current_span("s") as span:
        assert span.get_span_context().is_valid and not span.is_recording()
        logger.info("sampled out")
    assert handler.flush(10)
    (entry,) = server.entries()
    assert "trace" not in entry and "otelTraceID" not in entry["jsonPayload"]


def test_trace_path_names_the_project_resolved_at_the_first_send(
    server: FakeCloudLogging,
    make_handler: Any,
    gcp: Any,
    tracer: Tracer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "env-project")
    handler = make_handler(project=None)
    logger = gcp.logger_for(handler)
    server.fail_next(1, status=503)  # the entry made at send time is resent as it was
    with tracer.start_as_current_span("s") as span:
        logger.info("before the project is known")
    assert handler.flush(10)
    failed, resent = server.requests()
    assert failed["status"] == 503 and resent["insert_ids"] == failed["insert_ids"]
    with tracer.start_as_current_span("s2") as span2:
        logger.info("after")
    assert handler.flush(10)
    first, second = server.entries()
    assert first["logName"].startswith("projects/env-project/")
    assert first["trace"] == f"projects/env-project/traces/{ids_of(span)[0]}"
    assert second["trace"] == f"projects/env-project/traces/{ids_of(span2)[0]}"


def test_otel_not_imported_means_no_lookup() -> None:
    """The snapshot asks OpenTelemetry only when the app loaded it (checked in a fresh
    interpreter: this one imported the SDK above)."""
    import subprocess

    code = (
        "import logging, sys\n"
        "from dagster_logship.shipping.snapshots import EXTRAS, snapshot\n"
        "snap = snapshot(logging.LogRecord('x', 20, 'f.py', 1, 'm', None, None))\n"
        "assert snap[EXTRAS] is None\n"
        "assert 'opentelemetry.trace' not in sys.modules, 'imported by us'\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip
    assert done.stdout.strip() == "ok", done.stderr


# -- Error Reporting -----------------------------------------------------------------------------


def test_logger_exception_is_an_error_reporting_event(
    server: FakeCloudLogging, make_handler: Any, gcp: Any
) -> None:
    handler = make_handler()
    logger = gcp.logger_for(handler)
    try:
        raise_boom()
    except ValueError as exc:
        logger.exception("load failed")
        expected_traceback = "".join(traceback.format_exception(exc))
    logger.info("with stack", stack_info=True)  # a stack, but no error
    logger.warning("just a warning")
    assert handler.flush(10)
    failed, stack, warning = (e["jsonPayload"] for e in server.entries())
    assert failed["exception"] == {
        "type": "ValueError",
        "message": "boom",
        "traceback": expected_traceback,
    }
    assert failed["stack_trace"] == expected_traceback
    assert failed["stack_trace"].startswith("Traceback (most recent call last):\n")
    assert failed["stack_trace"].endswith("ValueError: boom\n")
    assert failed["@type"] == ERROR_EVENT_TYPE
    assert failed["message"] == "load failed"
    for payload in (stack, warning):
        assert "stack_trace" not in payload and "@type" not in payload


def test_traceback_too_large_for_two_copies_moves_to_stack_trace(
    server: FakeCloudLogging, make_handler: Any, gcp: Any
) -> None:
    handler = make_handler()
    logger = gcp.logger_for(handler)
    big = "y" * (90 * 1024)
    try:
        raise RuntimeError(big)
    except RuntimeError:
        logger.exception("huge error")
    assert handler.flush(10)
    (entry,) = server.entries()  # accepted: under 256 KiB
    payload = entry["jsonPayload"]
    assert payload["stack_trace"].endswith(f"RuntimeError: {big}\n")
    assert payload["exception"] == {
        "type": "RuntimeError",
        "message": big,
        "traceback": TRACEBACK_MOVED,
    }
    assert payload["@type"] == ERROR_EVENT_TYPE


def test_split_message_reports_the_error_once(
    server: FakeCloudLogging, make_handler: Any, gcp: Any
) -> None:
    handler = make_handler()
    logger = gcp.logger_for(handler)
    try:
        raise_boom()
    except ValueError:
        logger.exception("z" * (400 * 1024))
    assert handler.flush(10)
    parts = sorted(server.entries(), key=lambda e: e["jsonPayload"]["part"]["index"])
    assert len(parts) >= 2
    assert [("stack_trace" in p["jsonPayload"], "@type" in p["jsonPayload"]) for p in parts] == [
        (True, True)] + [(False, False)] * (len(parts) - 1)  # fmt: skip
    assert all(p["jsonPayload"]["exception"]["type"] == "ValueError" for p in parts)


def test_dagster_error_text_becomes_pythons_layout() -> None:
    """A failure event's error (Dagster's ``to_string()``) as Python prints the exception,
    chained causes and contexts included: the layout Error Reporting parses."""
    from dagster._utils.error import serializable_error_info_from_exc_info

    def inner() -> None:
        raise KeyError("k")

    def outer() -> None:
        try:
            inner()
        except KeyError as exc:
            raise ValueError("v\nsecond line") from exc

    try:
        try:
            outer()
        except ValueError:
            raise RuntimeError("while handling")  # noqa: B904 - a context, not a cause
    except RuntimeError as exc:
        info = serializable_error_info_from_exc_info(sys.exc_info())
        expected = "".join(traceback.format_exception(exc))
    assert "\nStack Trace:\n" in info.to_string()
    assert python_traceback(info.to_string()) == expected
    assert python_traceback("no stack here") == "no stack here"
    assert python_traceback(expected) == expected


# -- format gcp on stdout ------------------------------------------------------------------------


def test_stdout_lines_carry_the_same_fields(
    stdout_gcp: tuple[logging.Logger, JsonStreamHandler, io.StringIO],
    tracer: Tracer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    logger, handler, out = stdout_gcp
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    with tracer.start_as_current_span("request") as span:
        logger.info("served", extra={
            "labels": {"route": "/items"}, "http_request": HTTP_REQUEST,
            "json_fields": {"user": "u1", "severity": "shadowed"},
        })  # fmt: skip
    assert handler.flush(10)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "stdout-project")
    with tracer.start_as_current_span("request") as span2:
        try:
            raise_boom()
        except ValueError as exc:
            logger.exception("failed")
            expected_traceback = "".join(traceback.format_exception(exc))
    served, failed = lines_of(handler, out)
    trace_id, span_id = ids_of(span)
    assert served == {
        "severity": "INFO",
        "message": "served",
        "time": served["time"],
        "logging.googleapis.com/labels": {"route": "/items"},
        "logging.googleapis.com/sourceLocation": served["logging.googleapis.com/sourceLocation"],
        # no GOOGLE_CLOUD_PROJECT: the bare trace id
        "logging.googleapis.com/trace": trace_id,
        "logging.googleapis.com/spanId": span_id,
        "logging.googleapis.com/trace_sampled": True,
        "httpRequest": HTTP_REQUEST,
        "level": "INFO",
        "logger": "stdout-gcp",
        "orig_message": None,
        "log_message_id": None,
        "run_id": None,
        "job_name": None,
        "step_key": None,
        "op_name": None,
        "event_type": None,
        "pid": served["pid"],
        "job_tags": None,
        "source": served["source"],
        "otelTraceID": trace_id,
        "otelSpanID": span_id,
        "otelTraceSampled": True,
        "user": "u1",
        "extra_severity": "shadowed",  # a field named like a key the agent reads
    }
    assert failed["logging.googleapis.com/trace"] == (
        f"projects/stdout-project/traces/{ids_of(span2)[0]}"
    )
    assert failed["severity"] == "ERROR"
    assert failed["stack_trace"] == expected_traceback
    assert failed["@type"] == ERROR_EVENT_TYPE
    assert failed["exception"]["traceback"] == expected_traceback


def test_stdout_dagster_style_records_keep_their_labels(
    stdout_gcp: tuple[logging.Logger, JsonStreamHandler, io.StringIO], gcp: Any
) -> None:
    logger, handler, out = stdout_gcp
    meta = gcp.dagster_meta()
    logger.info("line", extra={"dagster_meta": meta, "labels": {"step_key": "mine", "x": "1"}})
    (line,) = lines_of(handler, out)
    assert line["logging.googleapis.com/labels"] == {
        "run_id": meta["run_id"],
        "job_name": "etl_job",
        "step_key": "mine",
        "x": "1",
    }
    assert "labels" not in line
