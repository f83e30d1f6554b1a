"""How to read the event schema's run context off Dagster's records: the shipping core knows none.

Dagster attaches a ``dagster_meta`` dict to every record it hands a logger or a ``python_logs``
handler (its ``DagsterLogHandler``): the user's message (``orig_message``), the message id, the
run, job, step and op, the job's tags, and the ``DagsterEvent`` when the record reports one.
:func:`dagster_snapshot` is the shipping core's ``snapshot`` for such records, with those values
in the snapshot's context slots; our handlers snapshot records with it. :func:`relayed_snapshot`
makes the same snapshot from a relayed call's values, without a record (``loggers/_relay.py``).

An event's facts (type name, pid, error) are read off the ``DagsterEvent`` here, when the
snapshot is made, so what is queued holds plain values and the worker calls nothing on a Dagster
object. Event records are rare (a step's start, success, failure...); a plain ``context.log``
call pays nothing for them. Duck-typed: this module does not import dagster.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from .shipping.snapshots import (
    CONTEXT_MEMORY,
    EXTRA_MEMORY,
    NOT_EXTRA,
    OTEL_TRACE,
    PLAIN_KEYS,
    SNAPSHOT_MEMORY,
    Snapshot,
    created_of,
    exception_parts,
    message_parts,
    safe_str,
    snapshot,
    with_active_span,
    with_fields,
)

__all__ = ["DAGSTER_NOT_EXTRA", "dagster_snapshot", "event_facts", "relayed_snapshot"]

_DAGSTER_META = "dagster_meta"
#: Record attributes that are not user extras: Dagster's metadata, and the event objects it
#: logs as extras (the schema carries what they say).
DAGSTER_NOT_EXTRA = NOT_EXTRA | {_DAGSTER_META, "dagster_event", "dagster_event_batch_metadata"}
_modules = sys.modules

# The job_tags last seen, with a copy and their pairs: Dagster passes the run's one tags mapping
# with every record, so its pairs are made once and shared (an old shared tuple costs the
# collector nothing). The copy catches a mapping changed in place. One tuple: swapped whole.
_last_tags: tuple[Any, dict[Any, Any], tuple[Any, ...]] = (None, {}, ())


def _tags_of(tags: Any) -> tuple[Any, ...] | None:
    global _last_tags
    obj, copy, pairs = _last_tags
    try:
        if not tags:  # inside: a mapping's truth value may raise too
            return None
        if tags is obj and tags == copy:
            return pairs
        copy = dict(tags)
        pairs = tuple(copy.items())
    except Exception:
        return (("job_tags", safe_str(tags)),)
    _last_tags = (tags, copy, pairs)
    return pairs


def event_facts(dagster_event: Any) -> tuple[str | None, int | None, dict[str, Any] | None]:
    """What the schema takes from a DagsterEvent, as plain values: (event type name, pid,
    exception dict or None). Never raises."""
    try:
        # The enum's name (RUN_SUCCESS), not its legacy value (PIPELINE_SUCCESS).
        kind = getattr(dagster_event, "event_type", None)
        event_type = getattr(kind, "name", None) or getattr(dagster_event, "event_type_value", None)
        if event_type is not None and not isinstance(event_type, str):
            event_type = safe_str(event_type)
        pid = getattr(dagster_event, "pid", None)
        if not isinstance(pid, int):
            pid = None
        # Dagster reports step failures as events carrying a SerializableErrorInfo.
        error = getattr(getattr(dagster_event, "event_specific_data", None), "error", None)
        if error is None or not hasattr(error, "message"):
            return event_type, pid, None
    except Exception:  # a hostile object: no facts rather than an error in the caller
        return None, None, None
    try:
        cls_name = getattr(error, "cls_name", None)
        exception = {
            "type": cls_name if cls_name is None else safe_str(cls_name),
            "message": safe_str(error.message).rstrip("\n"),
            "traceback": error.to_string() if hasattr(error, "to_string") else None,
        }
    except Exception:
        exception = {"type": None, "message": safe_str(error), "traceback": None}
    return event_type, pid, exception


def _facts_and_size(dagster_event: Any) -> tuple[Any, int]:
    """The event's facts and the characters of text they hold (its error's)."""
    facts = event_facts(dagster_event)
    exception = facts[2]
    if exception is None:
        return facts, 0
    size = 0
    for value in exception.values():
        if type(value) is str:
            size += len(value)
    return facts, size


def dagster_snapshot(record: logging.LogRecord) -> Snapshot:
    """The snapshot of ``record`` with its ``dagster_meta`` in the context slots; a record
    without it gets the core's :func:`~.shipping.snapshots.snapshot`. Never raises."""
    attributes = record.__dict__
    raw_meta = attributes.get(_DAGSTER_META)
    if raw_meta is None or not isinstance(raw_meta, dict):
        return snapshot(record, DAGSTER_NOT_EXTRA)
    created = record.created
    if type(created) is not float or not -1e11 < created < 1e11:  # NaN fails both tests
        created = created_of(created)
    if record.exc_info or record.exc_text or record.stack_info:
        exc_text, exc_type, exc_message = exception_parts(record)
    else:
        exc_text = exc_type = exc_message = None
    extras = None
    extras_mem = 0
    try:
        if (
            len(attributes) > PLAIN_KEYS + 1  # the metadata's own key
            and not attributes.keys() <= DAGSTER_NOT_EXTRA
        ):
            extras = tuple(
                [
                    (key, value)
                    for key, value in attributes.items()
                    if key not in DAGSTER_NOT_EXTRA and not key.startswith("_")
                ]
            )
            extras_mem = EXTRA_MEMORY * len(extras)
    except Exception:  # a record with a hostile __dict__
        extras = None
    if OTEL_TRACE in _modules:  # the app loaded OpenTelemetry: its active span, if any
        extras, extras_mem = with_active_span(extras, extras_mem)
    get = raw_meta.get
    message = orig = get("orig_message")
    args = None
    if isinstance(message, str):
        text = len(message)
    else:
        message, args, text = message_parts(record)
        text += len(message)
    if exc_text:
        text += len(exc_text)
    tags = get("job_tags")
    last_tags = _last_tags  # the run's one tags mapping, unchanged: its shared pairs
    try:
        same = tags is last_tags[0] and tags == last_tags[1]
    except Exception:  # a mapping whose == raises: _tags_of copes
        same = False
    pairs = last_tags[2] if same else _tags_of(tags)
    facts = get("dagster_event")
    if facts is not None:  # an event record: rare
        facts, event_text = _facts_and_size(facts)
        text += event_text
    snap: Snapshot = (
        created, record.levelname, record.name, record.process, message, exc_text,
        exc_type, exc_message,
        True, orig, get("log_message_id"), get("run_id"), get("job_name"),
        get("step_key"), get("op_name"), pairs, facts,
        None, None, None,
        extras, text + 256, text + SNAPSHOT_MEMORY + CONTEXT_MEMORY + extras_mem,
    )  # fmt: skip
    if args:
        return snap + args if type(args) is tuple else with_fields(snap, args)
    return snap


def relayed_snapshot(
    created: float, levelname: str, name: str, process: int | None, meta: dict[str, Any]
) -> Snapshot | None:
    """What :func:`dagster_snapshot` makes of the record a logger would build for a call
    Dagster relays to a ``@logger`` (``logger.log(level, line, exc_info=None,
    extra={"dagster_meta": meta, ...})``), made from the call's values without the record. None
    when ``meta`` is not of that kind (its ``orig_message`` is not a string): then the caller
    builds the record.

    The snapshot is the same tuple, field for field (tests/test_relay_logger.py compares them):
    such a record has no args, no exception and no extras (but the active OpenTelemetry span's
    fields, as the record's snapshot adds them), and its message is ``orig_message``."""
    get = meta.get
    orig = get("orig_message")
    if type(orig) is not str:
        return None
    extras, extras_mem = None, 0
    if OTEL_TRACE in _modules:
        extras, extras_mem = with_active_span(None, 0)
    tags = get("job_tags")
    last_tags = _last_tags
    try:
        same = tags is last_tags[0] and tags == last_tags[1]
    except Exception:  # a mapping whose == raises: _tags_of copes
        same = False
    text = len(orig)
    facts = get("dagster_event")
    if facts is not None:  # an event record: rare
        facts, event_text = _facts_and_size(facts)
        text += event_text
    return (
        created, levelname, name, process, orig, None, None, None,
        True, orig, get("log_message_id"), get("run_id"), get("job_name"),
        get("step_key"), get("op_name"), last_tags[2] if same else _tags_of(tags),
        facts, None, None, None,
        extras, text + 256, text + SNAPSHOT_MEMORY + CONTEXT_MEMORY + extras_mem,
    )  # fmt: skip
