"""From a snapshot to the one event schema, and from the event to JSON that is always valid.

:func:`build_event` and :func:`encode` run on the worker thread, on what ``snapshots.py`` kept of
the record on the caller's thread. Neither ever raises: whatever a record holds ends as valid
JSON, and every transformation is documented in the README ("Event schema").
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any

from pythonjsonlogger.json import JsonEncoder

from .snapshots import (
    CREATED,
    EVENT_FACTS,
    EXC_MESSAGE,
    EXC_TEXT,
    EXC_TYPE,
    EXTRAS,
    HAS_META,
    JOB_TAGS,
    LEVEL,
    LOGGER,
    MEM,
    META_VALUES,
    PID,
    SIZE,
    SOURCE_FILE,
    SOURCE_FUNCTION,
    SOURCE_LINE,
    Snapshot,
    message_text,
    safe_str,
)

__all__ = [
    # re-exported from snapshots.py for importers not yet moved there
    "CREATED",
    "MEM",
    "SCHEMA_FIELDS",
    "SIZE",
    "Snapshot",
    "build_event",
    "compact_json",
    "encode",
    "finish_text",
    "fit_event",
    "json_default",
    "rfc3339",
    "sanitize",
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

#: The schema fields of a snapshot's META_VALUES, in their order.
_META_KEYS = ("orig_message", "log_message_id", "run_id", "job_name", "step_key", "op_name")
_MAX_DEPTH = 32


_second_prefix: tuple[int, str] = (-1, "")


def rfc3339(created: float) -> str:
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
        "timestamp": rfc3339(snap[CREATED]),
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
            event[key] = value if value is None or isinstance(value, str) else safe_str(value)
        tags = snap[JOB_TAGS]
        event["job_tags"] = dict(tags) if tags else None
        facts = snap[EVENT_FACTS]
        if facts is not None:
            event["event_type"], pid, error = facts
            if pid is not None:
                event["pid"] = pid
            if error is not None:  # a copy: the snapshot may be built again
                from_event = dict(error)
    exception = _exception_of(snap, from_event)
    if exception is not None:
        event["exception"] = exception
    if not snap[HAS_META]:
        # Only for records without run context: a host that relays records (Dagster does)
        # would be named as their location.
        event["source"] = {
            "file": snap[SOURCE_FILE],
            "line": snap[SOURCE_LINE],
            "function": snap[SOURCE_FUNCTION],
        }
    if snap[EXTRAS]:
        for key, value in snap[EXTRAS]:
            name = key if key not in event else f"extra_{key}"
            if isinstance(value, (dict, list, tuple)) and _deeper_than(value, _MAX_DEPTH - 1):
                # Capped here, not only when encoding fails: Cloud Logging's JSON parser refuses
                # a whole request nested 100 levels deep (protobuf's limit).
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
            # python-json-logger's marker when str() fails; the README promises str(), else
            # repr(), else "<unprintable T>".
            return safe_str(o)
        return converted


_ENCODER = _Encoder()


def json_default(obj: Any) -> Any:
    """What the schema's encoder makes of an object ``json`` cannot encode (datetimes as ISO
    8601, bytes as text, sets as lists, ...), else ``str(obj)``: a ``default`` for
    ``json.dumps``. Never raises."""
    try:
        converted = _ENCODER.default(obj)
    except Exception:
        return safe_str(obj)
    return converted if converted is not obj else safe_str(obj)


def sanitize(obj: Any) -> Any:
    """``obj`` rebuilt from plain JSON types: cycles, NaN/inf, deep nesting and failing objects
    become marker strings. Never raises."""
    return _sanitize(obj, 0, set())


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
                (k if isinstance(k, str) else safe_str(k)): _sanitize(v, depth + 1, path)
                for k, v in list(obj.items())
            }
        if isinstance(obj, (list, tuple)):
            return [_sanitize(v, depth + 1, path) for v in list(obj)]
        return _sanitize(json_default(obj), depth + 1, path)
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

    def compact_json(obj: Any) -> str:
        """``obj`` as JSON without spaces, as in every event's text; raises as ``json`` does."""
        return "".join(_C_ENCODE(obj, 0))

else:  # pragma: no cover - Pythons without the C accelerator

    def compact_json(obj: Any) -> str:
        return _FAST_ENCODER.encode(obj)


def encode(event: dict[str, Any]) -> tuple[str, int]:
    """The event as one line of JSON and its size in UTF-8 bytes. Never raises.

    Lone surrogates (invalid unicode) become U+FFFD so the text is valid UTF-8.
    """
    try:
        text = compact_json(event)
    except Exception:
        try:
            text = compact_json(_sanitize(event, 0, set()))
        except Exception as exc:  # pragma: no cover - _sanitize yields plain JSON types
            text = compact_json({"message": "<event could not be encoded>", "error": repr(exc)})
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
        message = safe_str(message)
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
