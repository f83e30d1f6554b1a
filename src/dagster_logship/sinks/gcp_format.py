"""How schema events map onto Google Cloud Logging's structured fields.

Shared by the JSON console's ``format: gcp`` (read by the agents on GKE and Cloud Run from stdout)
and by the Cloud Logging sink, so that both give the same entry for the same record. No SDK
imports. Everything here runs on the worker thread and never raises.

What a record can carry, in the habits of google-cloud-logging's own handlers:

- ``extra={"labels": {...}}``: merged into the entry's labels (values as strings);
- ``extra={"http_request": {...}}``: the entry's ``httpRequest`` (the API's camelCase names or
  the proto's snake_case ones);
- ``extra={"json_fields": {...}}``: fields merged into the payload;
- trace correlation from extras ``trace``/``span_id``/``trace_sampled``, else from the
  attributes ``trace_id``/``span_id`` (dagster-otel style instrumentation) or ``otelTraceID``/
  ``otelSpanID``/``otelTraceSampled`` (OpenTelemetry's LoggingInstrumentor, or the active span
  that ``shipping.encoding.snapshot`` captured on the caller's thread);
- an exception (a record's, or a Dagster failure event's) also as ``stack_trace`` with the
  ``@type`` that makes Error Reporting take the entry as an error event.

A value that cannot go where Google expects it (a label that breaks the service's limits, an
``httpRequest`` field it does not know or of the wrong type) stays in the payload, under the
same extra's name: shipped, never refused by the service nor dropped.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, NamedTuple

from ..shipping.encoding import encode

__all__ = [
    "ERROR_EVENT_TYPE",
    "GCP_EXTRAS",
    "LABEL_FIELDS",
    "Structured",
    "http_request_of",
    "labels_of",
    "payload_text",
    "python_traceback",
    "severity_of",
    "source_location_of",
    "structure",
    "trace_fields_of",
]

#: schema fields copied into labels so that runs and steps can be filtered on
LABEL_FIELDS = ("run_id", "job_name", "step_key")
#: extras that become parts of the entry rather than payload fields
GCP_EXTRAS = ("labels", "http_request", "json_fields")
#: ``@type`` of a payload that Error Reporting takes as an error event
ERROR_EVENT_TYPE = (
    "type.googleapis.com/google.devtools.clouderrorreporting.v1beta1.ReportedErrorEvent"
)
#: the service's limits on an entry's labels
MAX_LABELS = 64
MAX_LABEL_KEY_BYTES = 512
MAX_LABEL_VALUE_BYTES = 64 * 1024
#: what replaces ``exception.traceback`` when the payload would not fit with both copies
TRACEBACK_MOVED = "<see stack_trace>"

_SEVERITIES = {
    "DEBUG": "DEBUG",
    "INFO": "INFO",
    "WARNING": "WARNING",
    "WARN": "WARNING",
    "ERROR": "ERROR",
    "CRITICAL": "CRITICAL",
    "FATAL": "CRITICAL",
}
#: Keys of an event that send it through :func:`structure` (else the event is the payload as is).
SPECIAL_KEYS = frozenset(
    {
        *GCP_EXTRAS,
        "exception",
        "trace",
        "trace_id",
        "span_id",
        "spanId",
        "trace_sampled",
        "otelTraceID",
        "otelSpanID",
        "otelTraceSampled",
    }
)


def severity_of(level: Any) -> str:
    """Cloud Logging severity of a Python level name (unknown levels: DEFAULT)."""
    return _SEVERITIES.get(str(level).upper(), "DEFAULT")


def labels_of(event: dict[str, Any], extra: dict[str, str] | None = None) -> dict[str, str]:
    """String labels for filtering: run_id, job_name and step_key when set, plus ``extra``."""
    labels = {k: str(event[k]) for k in LABEL_FIELDS if event.get(k) is not None}
    if extra:
        labels.update({str(k): str(v) for k, v in extra.items()})
    return labels


def source_location_of(event: dict[str, Any]) -> dict[str, Any] | None:
    """``sourceLocation`` from the event's ``source`` field, when the record had one."""
    source = event.get("source")
    if not isinstance(source, dict):
        return None
    location: dict[str, Any] = {}
    if source.get("file"):
        location["file"] = str(source["file"])
    if source.get("line") is not None:
        location["line"] = str(source["line"])
    if source.get("function"):
        location["function"] = str(source["function"])
    return location or None


# -- trace correlation ---------------------------------------------------------------------------


def _text(value: Any) -> str:
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"


def _hex_id(value: Any, digits: int) -> str | None:
    """A trace (32 digits) or span (16) id as lowercase hex; None for "no id" (None, 0, "0",
    all zeros, as LoggingInstrumentor sets outside a span). Other text is kept as it is."""
    if value is None or value is False:
        return None
    if isinstance(value, int):
        return format(value, f"0{digits}x") if value > 0 else None
    text = _text(value).strip()
    if text[:2] in ("0x", "0X"):
        text = text[2:]
    if not text or text.strip("0") == "":
        return None
    return text.lower() if re.fullmatch(r"[0-9A-Fa-f]+", text) else text


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("", "0", "false", "no", "off", "none")
    try:
        return bool(value)
    except Exception:
        return False


def trace_fields_of(event: dict[str, Any], project: str | None = None) -> dict[str, Any]:
    """Trace correlation, as ``{"trace", "spanId", "trace_sampled"}`` (each when known).

    First the extras ``trace`` (used as given), ``span_id``/``spanId``, ``trace_sampled``; then
    the attributes ``trace_id``/``span_id`` and ``otelTraceID``/``otelSpanID``/
    ``otelTraceSampled``. A trace id becomes ``projects/{project}/traces/{id}``, or stays the
    bare id when ``project`` is None."""
    out: dict[str, Any] = {}
    trace = event.get("trace")
    if trace:
        out["trace"] = _text(trace)
    else:
        trace_id = _hex_id(event.get("trace_id"), 32) or _hex_id(event.get("otelTraceID"), 32)
        if trace_id:
            out["trace"] = f"projects/{project}/traces/{trace_id}" if project else trace_id
    span = (
        _hex_id(event.get("span_id"), 16)
        or _hex_id(event.get("spanId"), 16)
        or _hex_id(event.get("otelSpanID"), 16)
    )
    if span:
        out["spanId"] = span
    sampled = event.get("trace_sampled")
    if sampled is None:
        sampled = event.get("otelTraceSampled")
    if sampled is not None:
        out["trace_sampled"] = _flag(sampled)
    return out


def needs_project(event: dict[str, Any]) -> bool:
    """True when the trace comes from a bare id, so that its path names the project."""
    return not event.get("trace") and bool(
        _hex_id(event.get("trace_id"), 32) or _hex_id(event.get("otelTraceID"), 32)
    )


# -- labels, httpRequest -------------------------------------------------------------------------


def _label_value(value: Any) -> str:
    """A label's value as the string the service requires: text as it is, anything else as
    its compact JSON (``1``, ``true``, ``null``, ``[1,2]``)."""
    return value if isinstance(value, str) else encode(value)[0]


def merge_labels(
    labels: dict[str, str], record_labels: Any
) -> tuple[dict[str, str], dict[str, Any] | None]:
    """``labels`` with the record's ``labels`` extra merged in (the record's win on conflict,
    as with Google's handlers), and what could not be a label: keys that are empty or over 512
    bytes, values over 64 KiB, labels past the 64 an entry holds. Those stay in the payload."""
    left: dict[str, Any] = {}
    try:
        items = list(record_labels.items())
    except Exception:
        return labels, None
    for key, value in items:
        name = key if isinstance(key, str) else _text(key)
        text = _label_value(value)
        if (
            not name
            or len(name.encode("utf-8", "replace")) > MAX_LABEL_KEY_BYTES
            or len(text.encode("utf-8", "replace")) > MAX_LABEL_VALUE_BYTES
            or (name not in labels and len(labels) >= MAX_LABELS)
        ):
            left[name] = value
            continue
        labels[name] = text
    return labels, left or None


_STRINGS = ("requestMethod", "requestUrl", "userAgent", "remoteIp", "serverIp", "referer",
            "protocol")  # fmt: skip
_SIZES = ("requestSize", "responseSize", "cacheFillBytes")
_FLAGS = ("cacheLookup", "cacheHit", "cacheValidatedWithOriginServer")
_HTTP_FIELDS = frozenset({*_STRINGS, *_SIZES, *_FLAGS, "status", "latency"})
#: the proto's snake_case names, which Google's Python types use
_SNAKE = {
    re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name): name for name in _HTTP_FIELDS
}
_DURATION = re.compile(r"^-?\d+(\.\d{1,9})?s$")


def _integral(value: Any) -> int | None:
    """An integer given as an int, an integral float or digits, else None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*\d{1,19}\s*", value):
        return int(value)
    return None


def _http_value(name: str, value: Any) -> tuple[bool, Any]:
    """(True, the value as the API types it) or (False, value) when it cannot be that type."""
    if name in _STRINGS:
        return True, value if isinstance(value, str) else _text(value)
    if name in _FLAGS:
        return (True, value) if isinstance(value, bool) else (False, value)
    integral = _integral(value)
    if name == "status":
        ok = integral is not None and 0 <= integral < 2**31
        return (True, integral) if ok else (False, value)
    if name in _SIZES:
        ok = integral is not None and integral >= 0
        return (True, str(integral)) if ok else (False, value)
    # latency: a Duration, "1.5s"; seconds as a number or a timedelta are converted
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return True, (f"{value:.9f}".rstrip("0").rstrip(".") or "0") + "s"
    if isinstance(value, str) and _DURATION.match(value.strip()):
        return True, value.strip()
    return False, value


def http_request_of(value: Any) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(``httpRequest``, what stays in the payload) of an ``http_request`` extra.

    The service refuses a whole entry whose ``httpRequest`` has a field it does not know or a
    value of the wrong type, so fields are mapped (snake_case names accepted, ``status`` as an
    integer, sizes as int64 text, ``latency`` as a Duration such as ``"0.25s"`` from seconds or
    a ``timedelta``) and what cannot be mapped is left in the payload. None fields are
    dropped."""
    try:
        items = list(value.items())
    except Exception:
        return None, None
    request: dict[str, Any] = {}
    left: dict[str, Any] = {}
    for key, item in items:
        name = key if isinstance(key, str) else _text(key)
        field = name if name in _HTTP_FIELDS else _SNAKE.get(name)
        if item is None:
            continue
        if field is None or field in request:
            left[name] = item
            continue
        ok, typed = _http_value(field, item)
        if ok:
            request[field] = typed
        else:
            left[name] = item
    return request or None, left or None


# -- Error Reporting -----------------------------------------------------------------------------

_DAGSTER_STACK = "\nStack Trace:\n"
_DAGSTER_CAUSE = "\nThe above exception was caused by the following exception:\n"
_DAGSTER_CONTEXT = "\nThe above exception occurred during handling of the following exception:\n"
_PY_HEADER = "Traceback (most recent call last):\n"
_PY_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_PY_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"
_LINKS = ((_DAGSTER_CAUSE, _PY_CAUSE), (_DAGSTER_CONTEXT, _PY_CONTEXT))


def python_traceback(text: str) -> str:
    """``text`` in the layout Python prints, which Error Reporting parses.

    Dagster's ``SerializableErrorInfo.to_string()`` (what a failure event carries) puts the
    exception line first, then ``Stack Trace:``, then its causes; it is rearranged (innermost
    cause first, each ``Traceback (most recent call last):`` then frames then the exception
    line). Any other text is returned as it is."""
    if _PY_HEADER in text or _DAGSTER_STACK not in text:
        return text
    segments: list[tuple[str | None, str]] = []
    link: str | None = None
    rest = text
    while True:
        found = [
            (at, dagster, python) for dagster, python in _LINKS if (at := rest.find(dagster)) >= 0
        ]
        if not found:
            segments.append((link, rest))
            break
        at, dagster, python = min(found)
        segments.append((link, rest[:at]))
        link = python
        rest = rest[at + len(dagster) :]
    out: list[str] = []
    for index in range(len(segments) - 1, -1, -1):
        link, segment = segments[index]
        message, _, frames = segment.partition(_DAGSTER_STACK)
        message = message if message.endswith("\n") else message + "\n"
        out.append(_PY_HEADER + frames + message if frames else message)
        if link is not None:
            out.append(link)
    return "".join(out)


def _error_report(event: dict[str, Any]) -> str | None:
    """The stack trace Error Reporting should read, for an event with an exception."""
    exception = event.get("exception")
    if not isinstance(exception, dict):
        return None
    part = event.get("part")
    if isinstance(part, dict) and part.get("index") not in (None, 1):
        return None  # one error per record: on its first part only
    kind, message = exception.get("type"), exception.get("message")
    trace = exception.get("traceback")
    if isinstance(trace, str) and trace.strip():
        stack = python_traceback(trace)
        if kind is None and _PY_HEADER not in stack:
            return None  # stack_info alone (``logger.info(..., stack_info=True)``) is no error
        return stack
    if kind is None:
        return None
    return f"{_text(kind)}: {_text(message)}" if message else _text(kind)


# -- the whole entry -----------------------------------------------------------------------------


class Structured(NamedTuple):
    """An event's parts as Cloud Logging takes them."""

    #: the payload: the event without the three GCP extras, with ``json_fields`` merged and the
    #: Error Reporting fields; ``event`` itself when unchanged
    payload: dict[str, Any]
    #: True when ``payload`` is not the event as it was encoded
    changed: bool
    #: every label of the entry
    labels: dict[str, str]
    http_request: dict[str, Any] | None
    #: see :func:`trace_fields_of`
    trace: dict[str, Any]
    #: True when ``stack_trace`` was added from ``exception.traceback`` (see :func:`payload_text`)
    reported: bool


def structure(
    event: dict[str, Any], labels: dict[str, str] | None = None, project: str | None = None
) -> Structured:
    """Split ``event`` into payload, labels (``labels_of`` with ``labels``, then the record's),
    ``httpRequest`` and trace fields. Never raises: on a failure, the event as it is."""
    base = labels_of(event, labels)
    if SPECIAL_KEYS.isdisjoint(event.keys()):
        return Structured(event, False, base, None, {}, False)
    try:
        return _structure(event, base, project)
    except Exception:  # pragma: no cover - every step above copes; last line of defence
        return Structured(event, False, base, None, trace_fields_of(event, project), False)


def _structure(event: dict[str, Any], labels: dict[str, str], project: str | None) -> Structured:
    payload = event
    changed = False
    http_request = None
    if any(name in event for name in GCP_EXTRAS):
        payload = dict(event)
        changed = True
        record_labels = payload.get("labels")
        if isinstance(record_labels, Mapping):
            del payload["labels"]
            labels, left = merge_labels(labels, record_labels)
            if left:
                payload["labels"] = left
        request = payload.get("http_request")
        if isinstance(request, Mapping):
            del payload["http_request"]
            http_request, left = http_request_of(request)
            if left:
                payload["http_request"] = left
        fields = payload.get("json_fields")
        if isinstance(fields, Mapping):
            del payload["json_fields"]
            for key, value in list(fields.items()):
                name = key if isinstance(key, str) else _text(key)
                payload[name if name not in payload else f"extra_{name}"] = value
    stack = _error_report(payload)
    reported = False
    if stack is not None and "stack_trace" not in payload:
        if not changed:
            payload, changed = dict(payload), True
        payload["stack_trace"] = stack
        payload.setdefault("@type", ERROR_EVENT_TYPE)
        reported = True
    return Structured(payload, changed, labels, http_request, trace_fields_of(event, project),
                      reported)  # fmt: skip


def payload_text(structured: Structured, text: str, max_bytes: int) -> str:
    """The payload's JSON: ``text`` (the event's) when unchanged. When the traceback, now in
    ``stack_trace`` too, makes it larger than ``max_bytes``, ``exception.traceback`` gives way
    to a pointer: the entry must fit the service's limit."""
    if not structured.changed:
        return text
    payload = structured.payload
    out, nbytes = encode(payload)
    if nbytes > max_bytes and structured.reported:
        exception = payload.get("exception")
        if isinstance(exception, dict) and isinstance(exception.get("traceback"), str):
            payload["exception"] = dict(exception, traceback=TRACEBACK_MOVED)
            out = encode(payload)[0]
    return out
