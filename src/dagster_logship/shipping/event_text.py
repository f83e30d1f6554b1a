"""The schema event's JSON text written straight from a snapshot, for the common record.

``encode(build_event(snap))`` builds a dict of 13 or more keys per record and walks it with the
JSON encoder: about 4.5 us per record, most of the worker's time (benchmarks/). Yet most of an
event does not change from one record to the next: the level, the logger, and for a Dagster
step the run, job, step, op, pid and tags. Here those parts are encoded once and kept as JSON
fragments; per record only the timestamp, the message and Dagster's message id are escaped and
joined in, at about a quarter of the cost.

Only plain records take this path: no exception or stack, no ``extra=`` fields, no event carrying
an error, string run context and tags. :func:`event_text` returns None for the rest, which
go through :func:`~.encoding.build_event`. The text is the same, byte for byte, as the general
path writes (tests/shipping/test_event_text.py compares them on generated records).
"""

from __future__ import annotations

from json.encoder import encode_basestring
from typing import Any

from .encoding import compact_json, finish_text, rfc3339
from .snapshots import (
    CREATED,
    EVENT_FACTS,
    EXC_TEXT,
    EXC_TYPE,
    EXTRAS,
    HAS_META,
    JOB_NAME,
    JOB_TAGS,
    LEVEL,
    LOG_MESSAGE_ID,
    LOGGER,
    OP_NAME,
    ORIG_MESSAGE,
    PID,
    RUN_ID,
    SOURCE_FILE,
    SOURCE_FUNCTION,
    SOURCE_LINE,
    STEP_KEY,
    Snapshot,
    message_text,
)

__all__ = ["event_text"]

#: Fragments per distinct (level, logger, Dagster context or source location); cleared when it
#: grows past this, which only a process logging from very many call sites or runs reaches.
_CACHE_LIMIT = 4096
_fragments: dict[tuple[Any, ...], tuple[str, str, str]] = {}
_STR_OR_NONE = (str, type(None))


def _fragments_of(snap: Snapshot, key: tuple[Any, ...], event_type: Any, pid: Any) -> Any:
    """The constant parts of the event, or None when a value is not a plain string (or int pid):
    (after the timestamp up to the message, after the message up to orig_message, from run_id to
    the end). Encoded by the general encoder, so that they are written alike.

    Only plain values are cached: a key then never matches a record whose values merely compare
    equal (``1 == True``) but encode differently; ``event_text`` checks the type of the values
    that may be numbers (pid, source line) itself, before looking up.
    """
    level, logger = snap[LEVEL], snap[LOGGER]
    if type(level) is not str or type(logger) is not str:
        return None
    if snap[HAS_META]:
        names = (snap[RUN_ID], snap[JOB_NAME], snap[STEP_KEY], snap[OP_NAME], event_type)
        tags = snap[JOB_TAGS] or ()
        if not all(type(v) in _STR_OR_NONE for v in names) or not all(
            type(k) is str and type(v) is str for k, v in tags
        ):
            return None
        tail: dict[str, Any] = {
            "run_id": names[0],
            "job_name": names[1],
            "step_key": names[2],
            "op_name": names[3],
            "event_type": event_type,
            "pid": pid,
            "job_tags": dict(tags) if tags else None,
        }
    else:
        file, line, function = snap[SOURCE_FILE], snap[SOURCE_LINE], snap[SOURCE_FUNCTION]
        if type(file) not in _STR_OR_NONE or type(function) not in _STR_OR_NONE or (
            line is not None and type(line) is not int
        ):
            return None
        tail = {
            "run_id": None,
            "job_name": None,
            "step_key": None,
            "op_name": None,
            "event_type": None,
            "pid": pid,
            "job_tags": None,
            "source": {"file": file, "line": line, "function": function},
        }
    head = compact_json({"level": level, "message": None})  # {"level":"INFO","message":null}
    middle = compact_json({"logger": logger, "orig_message": None})
    fragments = (
        '",' + head[1:-5],  # ","level":"INFO","message":
        "," + middle[1:-5],  # ,"logger":"name","orig_message":
        "," + compact_json(tail)[1:],  # ,"run_id":...}
    )
    if len(_fragments) >= _CACHE_LIMIT:
        _fragments.clear()
    _fragments[key] = fragments
    return fragments


def event_text(snap: Snapshot) -> tuple[str, int] | None:
    """The event's JSON text and its UTF-8 size, or None if this record needs the general path.

    Never raises: anything unexpected answers None.
    """
    try:
        if snap[EXC_TEXT] is not None or snap[EXC_TYPE] is not None or snap[EXTRAS]:
            return None
        pid = snap[PID]
        if snap[HAS_META]:
            event_type = None
            facts = snap[EVENT_FACTS]
            if facts is not None:
                event_type, event_pid, error = facts
                if error is not None:
                    return None
                if event_pid is not None:
                    pid = event_pid
            orig, message_id = snap[ORIG_MESSAGE], snap[LOG_MESSAGE_ID]
            if type(orig) not in _STR_OR_NONE or type(message_id) not in _STR_OR_NONE:
                return None
            key: tuple[Any, ...] = (
                snap[LEVEL], snap[LOGGER], snap[RUN_ID], snap[JOB_NAME], snap[STEP_KEY],
                snap[OP_NAME], event_type, pid, snap[JOB_TAGS],
            )  # fmt: skip
        else:
            orig = message_id = event_type = None
            line = snap[SOURCE_LINE]
            if line is not None and type(line) is not int:  # 10.0 == 10: not the same JSON
                return None
            key = (snap[LEVEL], snap[LOGGER], pid, snap[SOURCE_FILE], line,
                   snap[SOURCE_FUNCTION])  # fmt: skip
        if pid is not None and type(pid) is not int:
            return None
        fragments = _fragments.get(key)
        if fragments is None:
            fragments = _fragments_of(snap, key, event_type, pid)
            if fragments is None:
                return None
        message = message_text(snap)
        text_message = encode_basestring(message)
        if orig is None:
            text_orig = "null"
        elif orig is message:
            text_orig = text_message
        else:
            text_orig = encode_basestring(orig)
        text = "".join(
            (
                '{"timestamp":"', rfc3339(snap[CREATED]), fragments[0], text_message,
                fragments[1], text_orig, ',"log_message_id":',
                "null" if message_id is None else encode_basestring(message_id), fragments[2],
            )
        )  # fmt: skip
    except Exception:
        return None
    return finish_text(text)
