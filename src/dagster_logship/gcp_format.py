"""How schema events map onto Google Cloud Logging's structured fields.

Shared by the JSON console's ``format: gcp`` (read by the agents on GKE and Cloud Run from stdout)
and by the Cloud Logging sink. No SDK imports.
"""

from __future__ import annotations

from typing import Any

__all__ = ["LABEL_FIELDS", "labels_of", "severity_of", "source_location_of", "trace_fields_of"]

#: schema fields copied into labels so that runs and steps can be filtered on
LABEL_FIELDS = ("run_id", "job_name", "step_key")

_SEVERITIES = {
    "DEBUG": "DEBUG",
    "INFO": "INFO",
    "WARNING": "WARNING",
    "WARN": "WARNING",
    "ERROR": "ERROR",
    "CRITICAL": "CRITICAL",
    "FATAL": "CRITICAL",
}


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


def trace_fields_of(event: dict[str, Any]) -> dict[str, Any]:
    """Trace correlation from extras named ``trace``, ``span_id``/``spanId``, ``trace_sampled``."""
    out: dict[str, Any] = {}
    if event.get("trace"):
        out["trace"] = str(event["trace"])
    span = event.get("span_id") or event.get("spanId")
    if span:
        out["spanId"] = str(span)
    if event.get("trace_sampled") is not None:
        out["trace_sampled"] = bool(event["trace_sampled"])
    return out
