"""From a ``LogRecord`` to the one event schema, and from the event to JSON that is always valid.

Two halves with different budgets. :func:`snapshot` runs on the caller's thread inside ``emit``:
it only fixes what could change later (the message merged with its args, the traceback text) and
keeps a reference to the record. :func:`build_event` and :func:`encode` run on the worker thread.
Neither ever raises: whatever a record holds ends as valid JSON, and every transformation is
documented in the README ("Event schema").
"""

from __future__ import annotations

import logging
import math
import sys
import traceback
from datetime import datetime, timezone
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonEncoder

__all__ = [
    "SCHEMA_FIELDS",
    "Snapshot",
    "build_event",
    "encode",
    "fit_event",
    "snapshot",
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
_MAX_DEPTH = 32
#: Bytes a queued record holds besides its text and its attribute dict: the LogRecord object,
#: the floats, args and strings it refers to, the snapshot and the queue slot, with allocator
#: overhead (measured on CPython 3.11; see Snapshot.mem).
_RECORD_MEMORY = 768


class Snapshot:
    """What ``emit`` keeps of a record: the record itself plus the parts that could change later."""

    __slots__ = ("exc_text", "mem", "message", "record", "seq", "size", "t_mono")

    def __init__(self, record: logging.LogRecord, message: str, exc_text: str | None) -> None:
        self.record = record
        self.message = message
        self.exc_text = exc_text
        text = len(message) + (len(exc_text) if exc_text else 0)
        # Batch accounting in characters: cheap, and close to the encoded event's UTF-8 bytes.
        self.size = text + 256
        # Memory held while queued, for queue_max_bytes. FIX (issue 6): the queue used to be
        # bounded by ``size``, but a queued record holds the LogRecord and its attribute dict
        # too: measured at ~1,030 bytes for a 50 character message against 306 counted, so a
        # full queue took 3.4 times queue_max_bytes. The dict's own size is O(1) to read.
        try:
            attributes = sys.getsizeof(record.__dict__)
        except Exception:
            attributes = 512
        self.mem = text + attributes + _RECORD_MEMORY
        self.seq = 0
        self.t_mono = 0.0


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


def snapshot(record: logging.LogRecord) -> Snapshot:
    """Fix the parts of ``record`` that may change after ``emit`` returns. Never raises."""
    meta = record.__dict__.get(_DAGSTER_META)
    if meta is not None and isinstance(meta, dict):
        message = meta.get("orig_message")
        if not isinstance(message, str):
            message = _message_of(record)
    else:
        message = _message_of(record)
    exc_text = None
    if record.exc_info:
        try:
            exc_text = "".join(traceback.format_exception(*record.exc_info))
        except Exception as exc:
            exc_text = f"<traceback could not be formatted: {exc!r}>"
    elif record.exc_text:
        exc_text = record.exc_text
    if record.stack_info:
        exc_text = (exc_text + "\n" if exc_text else "") + record.stack_info
    return Snapshot(record, message, exc_text)


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


def _exception_of(snap: Snapshot, meta: dict[str, Any] | None) -> dict[str, Any] | None:
    record = snap.record
    if record.exc_info and record.exc_info[0] is not None:
        etype, evalue = record.exc_info[0], record.exc_info[1]
        return {
            "type": getattr(etype, "__name__", _safe_str(etype)),
            "message": _safe_str(evalue),
            "traceback": snap.exc_text,
        }
    if meta is not None:
        # Dagster reports step failures as events carrying a SerializableErrorInfo.
        error = getattr(
            getattr(meta.get("dagster_event"), "event_specific_data", None), "error", None
        )
        if error is not None and hasattr(error, "message"):
            try:
                return {
                    "type": getattr(error, "cls_name", None),
                    "message": _safe_str(error.message).rstrip("\n"),
                    "traceback": error.to_string() if hasattr(error, "to_string") else None,
                }
            except Exception:
                return {"type": None, "message": _safe_str(error), "traceback": None}
    if snap.exc_text:
        return {"type": None, "message": None, "traceback": snap.exc_text}
    return None


def build_event(snap: Snapshot) -> dict[str, Any]:
    """The schema event of a snapshot (DESIGN.md §4). Runs on the worker; never raises."""
    record = snap.record
    meta = record.__dict__.get(_DAGSTER_META)
    if not isinstance(meta, dict):
        meta = None
    event: dict[str, Any] = {
        "timestamp": _rfc3339(record.created),
        "level": record.levelname,
        "message": snap.message,
        "logger": record.name,
        "orig_message": None,
        "log_message_id": None,
        "run_id": None,
        "job_name": None,
        "step_key": None,
        "op_name": None,
        "event_type": None,
        "pid": record.process,
        "job_tags": None,
    }
    if meta is not None:
        for key in ("orig_message", "log_message_id", "run_id", "job_name", "step_key", "op_name"):
            value = meta.get(key)
            event[key] = value if value is None or isinstance(value, str) else _safe_str(value)
        tags = meta.get("job_tags")
        event["job_tags"] = dict(tags) if tags else None
        dagster_event = meta.get("dagster_event")
        if dagster_event is not None:
            # The enum's name (RUN_SUCCESS), not its legacy value (PIPELINE_SUCCESS).
            kind = getattr(dagster_event, "event_type", None)
            event["event_type"] = getattr(kind, "name", None) or getattr(
                dagster_event, "event_type_value", None
            )
            pid = getattr(dagster_event, "pid", None)
            if isinstance(pid, int):
                event["pid"] = pid
    exception = _exception_of(snap, meta)
    if exception is not None:
        event["exception"] = exception
    if meta is None:
        # Dagster re-logs records from its own code, so their location would be Dagster's.
        event["source"] = {
            "file": record.pathname,
            "line": record.lineno,
            "function": record.funcName,
        }
    try:
        for key, value in record.__dict__.items():
            if key in _NOT_EXTRA or key.startswith("_"):
                continue
            name = key if key not in event else f"extra_{key}"
            if isinstance(value, (dict, list, tuple)) and _deeper_than(value, _MAX_DEPTH - 1):
                # FIX (issue 6, bad-input corpus): the depth cap used to apply only when
                # encoding failed, so 100 levels went out as they were; Cloud Logging's JSON
                # parser refuses a whole request nested that deep (protobuf's limit is 100).
                value = _sanitize(value, 1, set())
            event[name] = value
    except Exception:  # a record with a hostile __dict__
        pass
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
