"""From a ``LogRecord`` to the one event schema, and from the event to JSON that is always valid.

Two halves with different budgets. :func:`snapshot` runs on the caller's thread inside ``emit``:
it copies what the event needs out of the record as plain values (the message, merged with its
args unless they are plain scalars merged later, the traceback text, Dagster's metadata, the
extras) and keeps no reference to the record.
:func:`build_event` and :func:`encode` run on the worker thread.
Neither ever raises: whatever a record holds ends as valid JSON, and every transformation is
documented in the README ("Event schema").
"""

from __future__ import annotations

import logging
import math
import sys
import time
import traceback
from collections.abc import Mapping
from datetime import datetime, timezone
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonEncoder

__all__ = [
    "FACTS",
    "SCHEMA_FIELDS",
    "Snapshot",
    "build_event",
    "encode",
    "event_facts",
    "finish_text",
    "fit_event",
    "message_text",
    "relayed_snapshot",
    "snapshot",
    "with_message",
]

#: Fields every event carries (null where unknown); user ``extra=`` fields are added beside them.
SCHEMA_FIELDS: tuple[str, ...] = (
    "timestamp",
    "level",
    "message",
    "logger",
    "orig_message",
    "log_message_id",
    "run_id",
    "job_name",
    "step_key",
    "op_name",
    "event_type",
    "pid",
    "job_tags",
)

_DAGSTER_META = "dagster_meta"
# Attributes of a LogRecord that are not user extras. python-json-logger keeps the list of the
# standard ones per Python version; the rest are set by formatters or by Dagster.
# Dagster also passes the event objects it logs as extras; the schema carries what they say.
_NOT_EXTRA = frozenset(RESERVED_ATTRS) | {
    "taskName",
    "message",
    "asctime",
    _DAGSTER_META,
    "dagster_event",
    "dagster_event_batch_metadata",
}
#: Keys of a fresh record's ``__dict__``, and with Dagster's metadata. ``makeRecord`` refuses an
#: extra that would replace a key, so a record with no more keys than these has no extras; one
#: with more (extras, or a formatter's ``message``/``asctime``) is checked key by key.
_PLAIN_KEYS = len(logging.LogRecord("", 0, "", 0, "", None, None).__dict__)
_MAX_DEPTH = 32
#: Bytes a queued snapshot holds besides its text: the tuple, the float, the string objects and
#: the queue entry, with allocator overhead; Dagster's metadata and each extra field add theirs
#: (measured on CPython 3.11; tests/shipping/test_fault_regressions.py checks the sum).
_SNAPSHOT_MEMORY = 400
_META_MEMORY = 160
_EXTRA_MEMORY = 120
_META_KEYS = ("orig_message", "log_message_id", "run_id", "job_name", "step_key", "op_name")


#: What ``emit`` keeps of a record: plain values, fixed at the time of the call, in one flat
#: tuple indexed by the constants below.
#:
#: Not the ``LogRecord``: a queue of records is several objects per record (the record, its
#: attribute dict, Dagster's metadata dict) that CPython's garbage collector walks on every pass,
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
#: True when the record carries Dagster's metadata; then the values of _META_KEYS, job_tags (as
#: pairs) and the DagsterEvent follow
HAS_META = 8
META_VALUES = slice(9, 15)
ORIG_MESSAGE, LOG_MESSAGE_ID, RUN_ID, JOB_NAME, STEP_KEY, OP_NAME = range(9, 15)
JOB_TAGS, DAGSTER_EVENT = 15, 16
#: file, line and function of a record not made by Dagster
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


_LogRecord = logging.LogRecord
#: Argument types whose text cannot change after the call, so merging them into the message
#: may wait for the worker.
_SCALARS = frozenset({int, float, bool, type(None)})
#: Memory of one deferred argument besides its text: its slot in the snapshot and its object.
_ARG_MEMORY = 40


def _message_parts(
    record: logging.LogRecord,
) -> tuple[str, tuple[Any, ...] | list[tuple[str, Any]] | None, int]:
    """(message, args still to merge or None, characters of text the args hold).

    Merging ``msg % args`` is a third of what a snapshot costs. When the format string and every
    argument are plain strings and numbers, nothing the caller does afterwards can change the
    text, so the snapshot keeps them and :func:`message_text` merges them off the caller's
    thread. Anything else (a custom LogRecord class, a mapping, an object whose ``str`` may
    change) is merged here, as ``LogRecord.getMessage`` would."""
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
        # A dict logged as the message (watchtower's habit): a list, not a tuple, in the args
        # place tells snapshot() these are fields (see _with_fields), off the common path.
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
    ships as ``str()``, as before). Its keys become fields like ``extra=`` ones (copied one level
    deep, now); the message is its string ``message`` key, else the dict as compact JSON."""
    try:
        pairs = [(k if type(k) is str else _safe_str(k), v) for k, v in list(msg.items())]
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
        message = encode(dict(pairs))[0]
    return message, fields, _EXTRA_MEMORY * len(fields)


def _with_fields(snap: Snapshot, fields: list[tuple[str, Any]] | tuple[Any, ...]) -> Snapshot:
    """``snap`` with a dict message's fields ahead of its ``extra=`` fields."""
    extras = snap[EXTRAS]
    pairs = tuple(fields) + extras if extras else tuple(fields)
    return (*snap[:EXTRAS], pairs, *snap[EXTRAS + 1 :])


def with_message(snap: Snapshot, text: Any) -> Snapshot:
    """``snap`` with ``text`` as its final message (what a handler's formatter made of the
    record), any args left to merge dropped. Never raises."""
    if type(text) is not str:
        text = _safe_str(text)
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
        return (("job_tags", _safe_str(tags)),)
    _last_tags = (tags, copy, pairs)
    return pairs


def _created_of(value: Any) -> float:
    """A record's ``created`` that is not a finite float (set by hand, or by
    ``logging.makeLogRecord`` from foreign data) is read as a number if it is one, else replaced
    by the time it is logged: every sink needs a real instant (README, "Event schema")."""
    try:
        created = float(value)
    except Exception:
        return time.time()
    return created if math.isfinite(created) and -1e11 < created < 1e11 else time.time()


def _exception_parts(record: logging.LogRecord) -> tuple[str | None, str | None, str | None]:
    """(traceback and stack text, exception type name, exception text) of a record."""
    exc_text = exc_type = exc_message = None
    exc_info = record.exc_info
    if exc_info:
        try:
            exc_text = "".join(traceback.format_exception(*exc_info))
        except Exception as exc:
            exc_text = f"<traceback could not be formatted: {exc!r}>"
        if exc_info[0] is not None:
            exc_type = getattr(exc_info[0], "__name__", None) or _safe_str(exc_info[0])
            exc_message = _safe_str(exc_info[1])
    elif record.exc_text:
        exc_text = record.exc_text
    if record.stack_info:
        exc_text = (exc_text + "\n" if exc_text else "") + record.stack_info
    return exc_text, exc_type, exc_message


_modules = sys.modules
_OTEL_TRACE = "opentelemetry.trace"
#: Record attributes that already name a trace (explicit extras, dagster-otel style
#: instrumentation, OpenTelemetry's LoggingInstrumentor): then the active span is not added.
_TRACE_KEYS = frozenset({"trace", "trace_id", "otelTraceID"})


def _with_active_span(
    extras: tuple[tuple[str, Any], ...] | None, extras_mem: int
) -> tuple[tuple[tuple[str, Any], ...] | None, int]:
    """``extras`` with the OpenTelemetry span active on this thread, as the ``otelTraceID``,
    ``otelSpanID`` and ``otelTraceSampled`` fields OpenTelemetry's LoggingInstrumentor would
    have set. The span is context-local: only the caller's thread, now, knows it. Only called
    when the app imported ``opentelemetry.trace`` (never imported here). Never raises."""
    try:
        if extras and any(key in _TRACE_KEYS for key, _ in extras):
            return extras, extras_mem
        trace_api = _modules[_OTEL_TRACE]
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
    return (extras + pairs if extras else pairs), extras_mem + _EXTRA_MEMORY * 3


def snapshot(record: logging.LogRecord) -> Snapshot:
    """Fix what ``record`` says at the time of the call, as plain values. Never raises."""
    attributes = record.__dict__
    created = record.created
    if type(created) is not float or not -1e11 < created < 1e11:  # NaN fails both tests
        created = _created_of(created)
    raw_meta = attributes.get(_DAGSTER_META)
    if record.exc_info or record.exc_text or record.stack_info:
        exc_text, exc_type, exc_message = _exception_parts(record)
    else:
        exc_text = exc_type = exc_message = None
    extras = None
    extras_mem = 0
    try:
        n_keys = len(attributes)
        if n_keys > _PLAIN_KEYS + (raw_meta is not None) and not attributes.keys() <= _NOT_EXTRA:
            extras = tuple(
                [
                    (key, value)
                    for key, value in attributes.items()
                    if key not in _NOT_EXTRA and not key.startswith("_")
                ]
            )
            extras_mem = _EXTRA_MEMORY * len(extras)
    except Exception:  # a record with a hostile __dict__
        extras = None
    if _OTEL_TRACE in _modules:  # the app loaded OpenTelemetry: its active span, if any
        extras, extras_mem = _with_active_span(extras, extras_mem)
    if raw_meta is not None and isinstance(raw_meta, dict):
        get = raw_meta.get
        message = orig = get("orig_message")
        args = None
        if isinstance(message, str):
            text = len(message)
        else:
            message, args, text = _message_parts(record)
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
        snap: Snapshot = (
            created, record.levelname, record.name, record.process, message, exc_text,
            exc_type, exc_message,
            True, orig, get("log_message_id"), get("run_id"), get("job_name"),
            get("step_key"), get("op_name"), pairs, get("dagster_event"),
            None, None, None,
            extras, text + 256, text + _SNAPSHOT_MEMORY + _META_MEMORY + extras_mem,
        )  # fmt: skip
        if args:
            return snap + args if type(args) is tuple else _with_fields(snap, args)
        return snap
    message, args, text = _message_parts(record)
    text += len(message)
    if exc_text:
        text += len(exc_text)
    snap = (
        created, record.levelname, record.name, record.process, message, exc_text,
        exc_type, exc_message,
        False, None, None, None, None, None, None, None, None,
        record.pathname, record.lineno, record.funcName,
        extras, text + 256, text + _SNAPSHOT_MEMORY + extras_mem,
    )  # fmt: skip
    if args:
        return snap + args if type(args) is tuple else _with_fields(snap, args)
    return snap


def relayed_snapshot(
    created: float, levelname: str, name: str, process: int | None, meta: dict[str, Any]
) -> Snapshot | None:
    """What :func:`snapshot` makes of the record a logger would build for a call Dagster relays
    to a ``@logger`` (``logger.log(level, line, exc_info=None, extra={"dagster_meta": meta,
    ...})``), made from the call's values without the record. None when ``meta`` is not of that
    kind (its ``orig_message`` is not a string): then the caller builds the record.

    The snapshot is the same tuple, field for field (tests/test_relay_logger.py compares them):
    such a record has no args, no exception and no extras (but the active OpenTelemetry span's
    fields, as :func:`snapshot` adds them), and its message is ``orig_message``."""
    get = meta.get
    orig = get("orig_message")
    if type(orig) is not str:
        return None
    extras, extras_mem = None, 0
    if _OTEL_TRACE in _modules:
        extras, extras_mem = _with_active_span(None, 0)
    tags = get("job_tags")
    last_tags = _last_tags
    try:
        same = tags is last_tags[0] and tags == last_tags[1]
    except Exception:  # a mapping whose == raises: _tags_of copes
        same = False
    text = len(orig)
    return (
        created, levelname, name, process, orig, None, None, None,
        True, orig, get("log_message_id"), get("run_id"), get("job_name"),
        get("step_key"), get("op_name"), last_tags[2] if same else _tags_of(tags),
        get("dagster_event"), None, None, None,
        extras, text + 256, text + _SNAPSHOT_MEMORY + _META_MEMORY + extras_mem,
    )  # fmt: skip


_second_prefix: tuple[int, str] = (-1, "")


def _rfc3339(created: float) -> str:
    """``datetime.fromtimestamp(created, utc).isoformat(timespec="microseconds")`` with ``Z``,
    rounding the same way, at a third of the cost: the date-time part is cached per second
    (every record of a busy second shares it)."""
    global _second_prefix
    frac, whole = math.modf(created)
    seconds = int(whole)
    micros = round(frac * 1e6)
    if micros >= 1_000_000:
        seconds, micros = seconds + 1, micros - 1_000_000
    elif micros < 0:
        seconds, micros = seconds - 1, micros + 1_000_000
    cached_second, prefix = _second_prefix
    if cached_second != seconds:
        try:
            prefix = datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        except (OverflowError, OSError, ValueError):  # a timestamp no calendar can show
            return f"{created!r}"
        _second_prefix = (seconds, prefix)  # one tuple: safe to read from any thread
    return f"{prefix}.{micros:06d}Z"


def _safe_str(obj: Any) -> str:
    try:
        return str(obj)
    except Exception:
        try:
            return repr(obj)
        except Exception:
            return f"<unprintable {type(obj).__name__}>"


#: First element of the plain form of a DagsterEvent (see :func:`event_facts`).
FACTS = "dagster-logship:event-facts"


def event_facts(dagster_event: Any) -> tuple[str, str | None, int | None, Any]:
    """What the schema takes from a DagsterEvent, as plain values: (FACTS, event type, pid,
    exception dict or None), so that what is kept holds no Dagster object; a tuple already in
    this form is returned as it is."""
    if type(dagster_event) is tuple and dagster_event and dagster_event[0] == FACTS:
        return dagster_event
    # The enum's name (RUN_SUCCESS), not its legacy value (PIPELINE_SUCCESS).
    kind = getattr(dagster_event, "event_type", None)
    event_type = getattr(kind, "name", None) or getattr(dagster_event, "event_type_value", None)
    if event_type is not None and not isinstance(event_type, str):
        event_type = _safe_str(event_type)
    pid = getattr(dagster_event, "pid", None)
    exception = None
    # Dagster reports step failures as events carrying a SerializableErrorInfo.
    error = getattr(getattr(dagster_event, "event_specific_data", None), "error", None)
    if error is not None and hasattr(error, "message"):
        try:
            cls_name = getattr(error, "cls_name", None)
            exception = {
                "type": cls_name if cls_name is None else _safe_str(cls_name),
                "message": _safe_str(error.message).rstrip("\n"),
                "traceback": error.to_string() if hasattr(error, "to_string") else None,
            }
        except Exception:
            exception = {"type": None, "message": _safe_str(error), "traceback": None}
    return (FACTS, event_type, pid if isinstance(pid, int) else None, exception)


def _exception_of(snap: Snapshot, from_event: dict[str, Any] | None) -> dict[str, Any] | None:
    if snap[EXC_TYPE] is not None:
        return {"type": snap[EXC_TYPE], "message": snap[EXC_MESSAGE], "traceback": snap[EXC_TEXT]}
    if from_event is not None:
        return from_event
    if snap[EXC_TEXT]:
        return {"type": None, "message": None, "traceback": snap[EXC_TEXT]}
    return None


def build_event(snap: Snapshot) -> dict[str, Any]:
    """The schema event of a snapshot (DESIGN.md §4). Runs on the worker; never raises."""
    event: dict[str, Any] = {
        "timestamp": _rfc3339(snap[CREATED]),
        "level": snap[LEVEL],
        "message": message_text(snap),
        "logger": snap[LOGGER],
        "orig_message": None,
        "log_message_id": None,
        "run_id": None,
        "job_name": None,
        "step_key": None,
        "op_name": None,
        "event_type": None,
        "pid": snap[PID],
        "job_tags": None,
    }
    from_event = None
    if snap[HAS_META]:
        for key, value in zip(_META_KEYS, snap[META_VALUES], strict=True):
            event[key] = value if value is None or isinstance(value, str) else _safe_str(value)
        tags = snap[JOB_TAGS]
        event["job_tags"] = dict(tags) if tags else None
        if snap[DAGSTER_EVENT] is not None:
            _, event["event_type"], pid, from_event = event_facts(snap[DAGSTER_EVENT])
            if pid is not None:
                event["pid"] = pid
    exception = _exception_of(snap, from_event)
    if exception is not None:
        event["exception"] = exception
    if not snap[HAS_META]:
        # Only for records not from Dagster: it re-logs records from its own code, so their
        # location would be Dagster's.
        event["source"] = {
            "file": snap[SOURCE_FILE],
            "line": snap[SOURCE_LINE],
            "function": snap[SOURCE_FUNCTION],
        }
    if snap[EXTRAS]:
        for key, value in snap[EXTRAS]:
            name = key if key not in event else f"extra_{key}"
            if isinstance(value, (dict, list, tuple)) and _deeper_than(value, _MAX_DEPTH - 1):
                # FIX (issue 6, bad-input corpus): the depth cap used to apply only when
                # encoding failed, so 100 levels went out as they were; Cloud Logging's JSON
                # parser refuses a whole request nested that deep (protobuf's limit is 100).
                value = _sanitize(value, 1, set())
            event[name] = value
    return event


def _deeper_than(obj: Any, limit: int) -> bool:
    """True if ``obj`` nests containers more than ``limit`` levels (cycles count as deep)."""
    stack: list[tuple[Any, int]] = [(obj, 1)]
    seen = 0
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        seen += 1
        if seen > 100_000:
            return True  # huge: let _sanitize bound it
        children = node.values() if isinstance(node, dict) else node
        for child in list(children):
            if isinstance(child, (dict, list, tuple)):
                stack.append((child, depth + 1))
    return False


class _Encoder(JsonEncoder):
    """python-json-logger's encoder (datetimes, exceptions, enums, dataclasses...) with bytes
    shown as text rather than base64, and sets as lists."""

    def default(self, o: Any) -> Any:
        if isinstance(o, (bytes, bytearray, memoryview)):
            return bytes(o).decode("utf-8", "backslashreplace")
        if isinstance(o, (set, frozenset)):
            return list(o)
        converted = super().default(o)
        if converted == "__could_not_encode__":
            # FIX (issue 6, bad-input corpus): python-json-logger's marker when str() fails;
            # the README promises str(), else repr(), else "<unprintable T>".
            return _safe_str(o)
        return converted


_ENCODER = _Encoder()


def _sanitize(obj: Any, depth: int, path: set[int]) -> Any:
    """Rebuild ``obj`` as plain JSON types: cycles, NaN/inf, deep nesting and failing objects
    become marker strings. Only used when the fast path failed."""
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        if math.isnan(obj):
            return "NaN"
        if math.isinf(obj):
            return "Infinity" if obj > 0 else "-Infinity"
        return obj
    if depth >= _MAX_DEPTH:
        return "<max depth>"
    oid = id(obj)
    if oid in path:
        return "<cycle>"
    path.add(oid)
    try:
        if isinstance(obj, dict):
            return {
                (k if isinstance(k, str) else _safe_str(k)): _sanitize(v, depth + 1, path)
                for k, v in list(obj.items())
            }
        if isinstance(obj, (list, tuple)):
            return [_sanitize(v, depth + 1, path) for v in list(obj)]
        try:
            converted = _ENCODER.default(obj)
        except Exception:
            converted = _safe_str(obj)
        if converted is obj:
            return _safe_str(obj)
        return _sanitize(converted, depth + 1, path)
    except Exception:
        return f"<unencodable {type(obj).__name__}>"
    finally:
        path.discard(oid)


# One encoder for every event: json.dumps(cls=...) builds a new one per call, a quarter of the
# encoding cost. JSONEncoder.encode keeps no state between calls, so threads may share it.
_FAST_ENCODER = _Encoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


if c_make_encoder is not None:
    # JSONEncoder.encode builds this C encoder again for every call, a third of the cost of
    # encoding an event. Without a markers dict it does not look for cycles itself: a cycle
    # ends in RecursionError, and encode() then takes the _sanitize path, which marks it.
    _C_ENCODE: Any = c_make_encoder(
        None, _FAST_ENCODER.default, encode_basestring, None, ":", ",", False, False, False
    )

    def _dumps(obj: Any) -> str:
        return "".join(_C_ENCODE(obj, 0))

else:  # pragma: no cover - Pythons without the C accelerator

    def _dumps(obj: Any) -> str:
        return _FAST_ENCODER.encode(obj)


def encode(event: dict[str, Any]) -> tuple[str, int]:
    """The event as one line of JSON and its size in UTF-8 bytes. Never raises.

    Lone surrogates (invalid unicode) become U+FFFD so the text is valid UTF-8.
    """
    try:
        text = _dumps(event)
    except Exception:
        try:
            text = _dumps(_sanitize(event, 0, set()))
        except Exception as exc:  # pragma: no cover - _sanitize yields plain JSON types
            text = _dumps({"message": "<event could not be encoded>", "error": repr(exc)})
    return finish_text(text)


def finish_text(text: str) -> tuple[str, int]:
    """``text`` with lone surrogates (invalid unicode) replaced by U+FFFD, and its UTF-8 size."""
    if text.isascii():
        return text, len(text)
    try:
        return text, len(text.encode("utf-8"))
    except UnicodeEncodeError:
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return text, len(text.encode("utf-8"))


def _cut_utf8(text: str, max_bytes: int) -> tuple[str, str]:
    """Split ``text`` so the head is at most ``max_bytes`` UTF-8 bytes, never inside a character."""
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text, ""
    head = data[:max_bytes].decode("utf-8", "ignore")
    return head, text[len(head) :]


def fit_event(
    event: dict[str, Any], text: str, nbytes: int, max_bytes: int, mode: str = "split"
) -> list[tuple[dict[str, Any], str, int]]:
    """Make an event that encodes to more than ``max_bytes`` fit.

    ``split``: the message is cut into ordered parts, each a full event whose ``part`` field says
    ``{"index": i, "count": n}`` (1-based) and whose other fields are kept. ``truncate``: one event
    whose message ends with a marker naming how many bytes were cut. When the other fields alone
    are too large (a huge traceback or extra), they are truncated the same way first.
    """
    if nbytes <= max_bytes:
        return [(event, text, nbytes)]
    event = dict(event)
    message = event.get("message") or ""
    if not isinstance(message, str):
        message = _safe_str(message)
    # Room left for the message once everything else is encoded (with slack for escaping and the
    # part marker).
    event["message"] = ""
    event["part"] = {"index": 999999, "count": 999999}
    base_bytes = encode(event)[1]
    if base_bytes > max_bytes // 2:
        _shrink_other_fields(event, max_bytes // 4)
        base_bytes = encode(event)[1]
    room = max(64, max_bytes - base_bytes - 64)
    if mode == "truncate":
        del event["part"]
        marker = "…[truncated {} bytes]"
        head, rest = _cut_utf8(message, room - len(marker.encode()) - 12)
        event["message"] = head + marker.format(len(rest.encode("utf-8", "surrogatepass")))
        out_text, out_bytes = encode(event)
        return [(event, out_text, out_bytes)]
    chunks: list[str] = []
    rest = message
    while rest or not chunks:
        # JSON escaping can grow a chunk (quotes, control characters): shrink until it fits.
        budget = room
        while True:
            head, tail = _cut_utf8(rest, budget)
            trial = dict(event, message=head)
            _, trial_bytes = encode(trial)
            if trial_bytes <= max_bytes or budget <= 16:
                break
            budget = budget * 3 // 4
        chunks.append(head)
        rest = tail
    parts = []
    for i, chunk in enumerate(chunks, start=1):
        part = dict(event, message=chunk, part={"index": i, "count": len(chunks)})
        part_text, part_bytes = encode(part)
        parts.append((part, part_text, part_bytes))
    return parts


def _shrink_other_fields(event: dict[str, Any], budget: int) -> None:
    """Truncate large non-message fields (tracebacks, extras) to ``budget`` bytes each."""
    for key, value in list(event.items()):
        if key in ("message", "part"):
            continue
        text, nbytes = encode({"v": value})
        if nbytes > budget:
            head, _ = _cut_utf8(text, budget)
            event[key] = {"truncated": True, "original_bytes": nbytes, "head": head}
