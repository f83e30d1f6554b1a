"""What ``emit`` keeps of a ``LogRecord``: the snapshot, made on the caller's thread.

:func:`snapshot` copies what the event needs out of the record as plain values (the message,
merged with its args unless they are plain scalars merged later, the traceback text, the
extras, the active OpenTelemetry span) and keeps no reference to the record. It never raises.
The worker turns a snapshot into the schema event (``encoding.py``).

The snapshot has slots for a record's run context (the schema's ``orig_message``, ``run_id``,
... fields and an event's facts). This module never fills them: it knows no host's records.
``dagster_logship.dagster_records`` builds, from the parts here, the snapshot of a record that
carries Dagster's metadata, and handlers for Dagster records use it (``ShippingHandler``'s
``snapshot_record``).
"""

from __future__ import annotations

import logging
import math
import sys
import time
import traceback
from collections.abc import Mapping
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS

__all__ = [
    "ARGS",
    "CONTEXT_MEMORY",
    "CREATED",
    "EVENT_FACTS",
    "EXC_MESSAGE",
    "EXC_TEXT",
    "EXC_TYPE",
    "EXTRAS",
    "EXTRA_MEMORY",
    "HAS_META",
    "JOB_NAME",
    "JOB_TAGS",
    "LEVEL",
    "LOGGER",
    "LOG_MESSAGE_ID",
    "MEM",
    "MESSAGE",
    "META_VALUES",
    "NOT_EXTRA",
    "OP_NAME",
    "ORIG_MESSAGE",
    "OTEL_TRACE",
    "PID",
    "PLAIN_KEYS",
    "RUN_ID",
    "SIZE",
    "SNAPSHOT_MEMORY",
    "SOURCE_FILE",
    "SOURCE_FUNCTION",
    "SOURCE_LINE",
    "STEP_KEY",
    "Snapshot",
    "created_of",
    "exception_parts",
    "message_parts",
    "message_text",
    "safe_str",
    "snapshot",
    "with_active_span",
    "with_fields",
    "with_message",
]

#: One flat tuple of plain values, fixed at the time of the call, indexed by the constants below.
#:
#: Not the ``LogRecord``: a queue of records is several objects per record (the record, its
#: attribute dict, its metadata dicts) that CPython's garbage collector walks on every pass,
#: and under a backlog they live long enough to reach the oldest generation, whose collections
#: walk the whole heap: ~6 us per record (benchmarks/). The collector stops tracking a tuple that
#: holds only strings, numbers and untracked tuples, but only an exact tuple (not a NamedTuple)
#: and one nesting level per collection, hence one flat tuple. Extras are copied (one level)
#: here, so a dict the caller changes after the call is shipped as it was.
Snapshot = tuple[Any, ...]
#: ``record.created``, ``levelname``, ``name``, ``process``
CREATED, LEVEL, LOGGER, PID = 0, 1, 2, 3
#: the message (merged with its args, or the format while ARGS holds them); the traceback text
MESSAGE, EXC_TEXT = 4, 5
#: type name and text of ``exc_info``'s exception, or None
EXC_TYPE, EXC_MESSAGE = 6, 7
#: True when the record carries run context; then the schema's orig_message, log_message_id,
#: run_id, job_name, step_key and op_name follow, then job_tags (as pairs) and the event's facts
HAS_META = 8
META_VALUES = slice(9, 15)
ORIG_MESSAGE, LOG_MESSAGE_ID, RUN_ID, JOB_NAME, STEP_KEY, OP_NAME = range(9, 15)
#: EVENT_FACTS: None, or the plain facts of the event the record reports, (event type name or
#: None, pid or None, exception dict or None); the schema takes event_type, pid and exception
#: from them.
JOB_TAGS, EVENT_FACTS = 15, 16
#: file, line and function of a record without run context
SOURCE_FILE, SOURCE_LINE, SOURCE_FUNCTION = 17, 18, 19
#: user ``extra=`` fields as (name, value) pairs in the record's order, or None
EXTRAS = 20
#: batch accounting in characters (close to the encoded event's UTF-8 bytes)
SIZE = 21
#: memory held while queued, for queue_max_bytes
MEM = 22
#: Where the %-args still to be merged into MESSAGE begin (see :func:`message_text`): they are
#: the snapshot's tail, ``snap[ARGS:]``, empty when MESSAGE is the final text. Not a nested
#: tuple: the collector, which moves a tuple referenced only by the snapshot behind it in its
#: list, would find that tuple still tracked when it looks at the snapshot, and a snapshot of
#: every %-args record would reach an older generation before it stopped being tracked (a
#: third of a microsecond per log call in a burst, benchmarks/).
ARGS = 23
#: The queue holds snapshots as they are: a record's sequence number is its place in the queue
#: and its age is that of the queue's head (see Worker), so ``put`` builds no second tuple.

#: Attributes of a LogRecord that are not user extras. python-json-logger keeps the list of the
#: standard ones per Python version; the rest are set by formatters.
NOT_EXTRA = frozenset(RESERVED_ATTRS) | {"taskName", "message", "asctime"}
#: Keys of a fresh record's ``__dict__``. ``makeRecord`` refuses an extra that would replace a
#: key, so a record with no more keys than these has no extras; one with more (extras, or a
#: formatter's ``message``/``asctime``) is checked key by key.
PLAIN_KEYS = len(logging.LogRecord("", 0, "", 0, "", None, None).__dict__)
#: Bytes a queued snapshot holds besides its text: the tuple, the float, the string objects and
#: the queue entry, with allocator overhead; run context and each extra field add theirs
#: (measured on CPython 3.11; tests/shipping/test_fault_regressions.py checks the sum).
SNAPSHOT_MEMORY = 400
CONTEXT_MEMORY = 160
EXTRA_MEMORY = 120

_LogRecord = logging.LogRecord
#: Argument types whose text cannot change after the call, so merging them into the message
#: may wait for the worker.
_SCALARS = frozenset({int, float, bool, type(None)})
#: Memory of one deferred argument besides its text: its slot in the snapshot and its object.
_ARG_MEMORY = 40


def safe_str(obj: Any) -> str:
    """``str(obj)``, else ``repr(obj)``, else ``<unprintable T>``: never raises."""
    try:
        return str(obj)
    except Exception:
        try:
            return repr(obj)
        except Exception:
            return f"<unprintable {type(obj).__name__}>"


def message_parts(
    record: logging.LogRecord,
) -> tuple[str, tuple[Any, ...] | list[tuple[str, Any]] | None, int]:
    """(message, args still to merge or None, characters of text the args hold).

    Merging ``msg % args`` is a third of what a snapshot costs. When the format string and every
    argument are plain strings and numbers, nothing the caller does afterwards can change the
    text, so the snapshot keeps them and :func:`message_text` merges them off the caller's
    thread. Anything else (a custom LogRecord class, a mapping, an object whose ``str`` may
    change) is merged here, as ``LogRecord.getMessage`` would. A list in the args place holds
    the fields of a dict message (see :func:`with_fields`)."""
    msg = record.msg
    if type(msg) is str and type(record) is _LogRecord:
        args = record.args
        if not args:
            return msg, None, 0
        if type(args) is tuple:
            chars = 0
            for arg in args:
                kind = type(arg)
                if kind is str:
                    chars += len(arg)  # type: ignore[arg-type]
                elif kind not in _SCALARS:
                    break
            else:
                return msg, args, chars + _ARG_MEMORY * len(args)
    elif isinstance(msg, Mapping) and not record.args:
        # A dict logged as the message (watchtower's habit), off the common path.
        structured = _structured(msg)
        if structured is not None:
            return structured
    return _message_of(record), None, 0


def message_text(snap: Snapshot) -> str:
    """The record's message with its arguments merged in, as ``LogRecord.getMessage`` makes it
    (and as ``emit`` would have, had it merged them itself)."""
    if len(snap) == ARGS:
        return snap[MESSAGE]  # type: ignore[no-any-return]
    args = snap[ARGS:]
    try:
        return snap[MESSAGE] % args  # type: ignore[no-any-return]
    except Exception as exc:  # bad %-args: the same text as _message_of gives
        return f"{snap[MESSAGE]!r} (could not merge args {args!r}: {exc!r})"


def _structured(msg: Mapping[Any, Any]) -> tuple[str, list[tuple[str, Any]], int] | None:
    """(message, fields, memory) of a dict message, or None when it cannot be read (then it
    ships as ``str()``). Its keys become fields like ``extra=`` ones (copied one level deep,
    now); the message is its string ``message`` key, else the dict as compact JSON."""
    try:
        pairs = [(k if type(k) is str else safe_str(k), v) for k, v in list(msg.items())]
    except Exception:
        return None
    message = None
    fields = []
    for key, value in pairs:
        if message is None and key == "message" and type(value) is str:
            message = value
        else:
            fields.append((key, value))
    if message is None:
        from .encoding import encode  # encoding imports this module's layout

        message = encode(dict(pairs))[0]
    return message, fields, EXTRA_MEMORY * len(fields)


def with_fields(snap: Snapshot, fields: list[tuple[str, Any]] | tuple[Any, ...]) -> Snapshot:
    """``snap`` with a dict message's fields ahead of its ``extra=`` fields."""
    extras = snap[EXTRAS]
    pairs = tuple(fields) + extras if extras else tuple(fields)
    return (*snap[:EXTRAS], pairs, *snap[EXTRAS + 1 :])


def with_message(snap: Snapshot, text: Any) -> Snapshot:
    """``snap`` with ``text`` as its final message (what a handler's formatter made of the
    record), any args left to merge dropped. Never raises."""
    if type(text) is not str:
        text = safe_str(text)
    old = snap[MESSAGE]
    delta = len(text) - (len(old) if type(old) is str else 0)
    return (
        *snap[:MESSAGE],
        text,
        *snap[MESSAGE + 1 : SIZE],
        snap[SIZE] + delta,
        snap[MEM] + delta,
        *snap[MEM + 1 : ARGS],
    )


def _message_of(record: logging.LogRecord) -> str:
    try:
        msg = record.getMessage()
    except Exception as exc:  # bad %-args must not reach the caller
        try:
            return f"{record.msg!r} (could not merge args {record.args!r}: {exc!r})"
        except Exception:
            return "<unprintable log message>"
    if isinstance(msg, str):
        return msg
    try:
        return str(msg)
    except Exception:
        return "<unprintable log message>"


def created_of(value: Any) -> float:
    """A record's ``created`` that is not a finite float (set by hand, or by
    ``logging.makeLogRecord`` from foreign data) is read as a number if it is one, else replaced
    by the time it is logged: every sink needs a real instant (README, "Event schema")."""
    try:
        created = float(value)
    except Exception:
        return time.time()
    return created if math.isfinite(created) and -1e11 < created < 1e11 else time.time()


def exception_parts(record: logging.LogRecord) -> tuple[str | None, str | None, str | None]:
    """(traceback and stack text, exception type name, exception text) of a record."""
    exc_text = exc_type = exc_message = None
    exc_info = record.exc_info
    if exc_info:
        try:
            exc_text = "".join(traceback.format_exception(*exc_info))
        except Exception as exc:
            exc_text = f"<traceback could not be formatted: {exc!r}>"
        if exc_info[0] is not None:
            exc_type = getattr(exc_info[0], "__name__", None) or safe_str(exc_info[0])
            exc_message = safe_str(exc_info[1])
    elif record.exc_text:
        exc_text = record.exc_text
    if record.stack_info:
        exc_text = (exc_text + "\n" if exc_text else "") + record.stack_info
    return exc_text, exc_type, exc_message


_modules = sys.modules
#: Loaded by the app when it uses OpenTelemetry (checked in ``sys.modules``, never imported).
OTEL_TRACE = "opentelemetry.trace"
#: Record attributes that already name a trace (explicit extras, dagster-otel style
#: instrumentation, OpenTelemetry's LoggingInstrumentor): then the active span is not added.
_TRACE_KEYS = frozenset({"trace", "trace_id", "otelTraceID"})


def with_active_span(
    extras: tuple[tuple[str, Any], ...] | None, extras_mem: int
) -> tuple[tuple[tuple[str, Any], ...] | None, int]:
    """``extras`` with the OpenTelemetry span active on this thread, as the ``otelTraceID``,
    ``otelSpanID`` and ``otelTraceSampled`` fields OpenTelemetry's LoggingInstrumentor would
    have set. The span is context-local: only the caller's thread, now, knows it. Only called
    when the app imported ``opentelemetry.trace`` (never imported here). Never raises."""
    try:
        if extras and any(key in _TRACE_KEYS for key, _ in extras):
            return extras, extras_mem
        trace_api = _modules[OTEL_TRACE]
        span = trace_api.get_current_span()
        if span is trace_api.INVALID_SPAN:  # no span: the usual case, kept cheap
            return extras, extras_mem
        context = span.get_span_context()
        if not context.is_valid or not span.is_recording():
            return extras, extras_mem
        pairs = (
            ("otelTraceID", format(context.trace_id, "032x")),
            ("otelSpanID", format(context.span_id, "016x")),
            ("otelTraceSampled", bool(context.trace_flags.sampled)),
        )
    except Exception:  # a broken or partial OpenTelemetry: no trace, never an error
        return extras, extras_mem
    return (extras + pairs if extras else pairs), extras_mem + EXTRA_MEMORY * 3


def snapshot(record: logging.LogRecord, not_extra: frozenset[str] = NOT_EXTRA) -> Snapshot:
    """Fix what ``record`` says at the time of the call, as plain values, without run context.
    Attributes named in ``not_extra`` are not shipped as extras. Never raises."""
    attributes = record.__dict__
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
        if len(attributes) > PLAIN_KEYS and not attributes.keys() <= not_extra:
            extras = tuple(
                [
                    (key, value)
                    for key, value in attributes.items()
                    if key not in not_extra and not key.startswith("_")
                ]
            )
            extras_mem = EXTRA_MEMORY * len(extras)
    except Exception:  # a record with a hostile __dict__
        extras = None
    if OTEL_TRACE in _modules:  # the app loaded OpenTelemetry: its active span, if any
        extras, extras_mem = with_active_span(extras, extras_mem)
    message, args, text = message_parts(record)
    text += len(message)
    if exc_text:
        text += len(exc_text)
    snap: Snapshot = (
        created, record.levelname, record.name, record.process, message, exc_text,
        exc_type, exc_message,
        False, None, None, None, None, None, None, None, None,
        record.pathname, record.lineno, record.funcName,
        extras, text + 256, text + SNAPSHOT_MEMORY + extras_mem,
    )  # fmt: skip
    if args:
        return snap + args if type(args) is tuple else with_fields(snap, args)
    return snap
