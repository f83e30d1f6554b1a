"""``format: dagster_aws``: CloudWatch events whose message is the JSON dagster-aws ships.

dagster-aws's (deprecated) ``CloudwatchLogsHandler`` sends each record as
``json.dumps(record.__dict__, sort_keys=True)`` (``dagster_shared.seven.json.dumps``) with the
event timestamp taken from ``dagster_meta["log_timestamp"]``. Logs Insights queries, metric
filters and alarms written against those events keep working when the same text arrives through
our batching, retry and spill pipeline.

The text is made on the caller's thread when the record is emitted (what the record holds then is
what ships), and carried through the shipping core as the ``message`` of a snapshot: the worker
wraps it in a schema event as usual (that event is what batching counts, and what a spill file
holds), and :class:`DagsterAwsCloudWatchSink` sends the message alone. Where dagster-aws's
``json.dumps`` raises, and loses the record, we do not (README, "Coming from dagster-aws"):

- a value JSON cannot encode becomes ``str(value)`` (``repr``, or ``<unprintable T>``, if that
  fails); a traceback object becomes its formatted text;
- if that still fails (a cycle, keys of mixed types that cannot be sorted, nesting too deep),
  the record is encoded again with keys made strings, cycles as ``"<cycle>"`` and nesting deeper
  than 64 levels as ``"<max depth>"``.

A record without a readable ``log_timestamp`` (a record not relayed by Dagster, or one whose
stamp lacks microseconds, which dagster-aws's parser refuses) takes ``record.created`` instead.
"""

from __future__ import annotations

import json
import math
import time
import traceback
import types
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from ..shipping.options import ConfigError
from ..shipping.sink import PAYLOAD
from ..shipping.snapshots import Snapshot, message_text
from .cloudwatch import CloudWatchSink

__all__ = [
    "FORMATS",
    "DagsterAwsCloudWatchSink",
    "dagster_aws_snapshot",
    "event_seconds",
    "record_json",
    "validate_format",
]

#: ``format`` values: our event schema, or dagster-aws's record JSON.
FORMATS = ("json", "dagster_aws")

_EPOCH = datetime(1970, 1, 1)
_ONE_MICROSECOND = timedelta(microseconds=1)
_MAX_DEPTH = 64
#: Estimates for the queue's accounting (see shipping/encoding.py): the snapshot's own objects.
_SNAPSHOT_MEMORY = 560


def validate_format(value: Any, key: str = "format") -> str:
    """``json`` or ``dagster_aws``."""
    if value not in FORMATS:
        raise ConfigError(key, f"got {value!r}", f"use one of {', '.join(FORMATS)}")
    return str(value)


def _safe_str(obj: Any) -> str:
    try:
        return str(obj)
    except Exception:
        try:
            return repr(obj)
        except Exception:
            return f"<unprintable {type(obj).__name__}>"


def _fallback(obj: Any) -> str:
    """json's ``default``: called only for what dagster-aws's ``json.dumps`` would raise on."""
    if isinstance(obj, types.TracebackType):
        try:
            return "".join(traceback.format_tb(obj))
        except Exception:
            return _safe_str(obj)
    return _safe_str(obj)


def _key(key: Any) -> str:
    """A key as json writes it (``True`` -> ``"true"``), for the rebuilt record."""
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, (bool, int, float)):
        return json.dumps(key)
    return _safe_str(key)


def _plain(obj: Any, depth: int, path: set[int]) -> Any:
    """``obj`` rebuilt from JSON types only; only used when encoding it as it is failed."""
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if depth >= _MAX_DEPTH:
        return "<max depth>"
    if not isinstance(obj, (dict, list, tuple)):
        return _fallback(obj)
    oid = id(obj)
    if oid in path:
        return "<cycle>"
    path.add(oid)
    try:
        if isinstance(obj, dict):
            return {_key(k): _plain(v, depth + 1, path) for k, v in list(obj.items())}
        return [_plain(v, depth + 1, path) for v in list(obj)]
    except Exception:
        return _safe_str(obj)
    finally:
        path.discard(oid)


def record_json(attributes: Mapping[str, Any]) -> str:
    """The message dagster-aws ships for a record with these attributes. Never raises.

    Byte for byte ``json.dumps(attributes, sort_keys=True)`` when that succeeds (``default`` is
    only consulted for values it cannot encode); see the module's docstring otherwise.
    """
    try:
        return json.dumps(attributes, sort_keys=True, default=_fallback)
    except Exception:
        pass
    try:
        return json.dumps(_plain(attributes, 0, set()), sort_keys=True)
    except Exception as exc:  # pragma: no cover - _plain yields plain JSON types
        return json.dumps({"msg": _safe_str(attributes.get("msg")), "error": repr(exc)})


def event_seconds(attributes: Mapping[str, Any]) -> float:
    """The event's instant in seconds, so that the sink's millisecond (floor of the rounded
    microseconds) is dagster-aws's: ``log_timestamp`` (naive UTC ISO text) read as dagster-aws
    reads it, else ``created``, else now."""
    meta = attributes.get("dagster_meta")
    stamp = meta.get("log_timestamp") if isinstance(meta, dict) else None
    if isinstance(stamp, str):
        try:
            when: datetime | None = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%f")
        except ValueError:
            try:  # no microseconds (Dagster omits ".000000"), or an offset
                when = datetime.fromisoformat(stamp)
            except ValueError:
                when = None
        if when is not None:
            if when.tzinfo is not None:
                when = when.astimezone(timezone.utc).replace(tzinfo=None)
            micros = (when - _EPOCH) // _ONE_MICROSECOND
            return micros / 1e6
    created = attributes.get("created")
    try:
        value = float(created)  # type: ignore[arg-type]
    except Exception:
        return time.time()
    return value if math.isfinite(value) and -1e11 < value < 1e11 else time.time()


def _str_or_none(value: Any) -> str | None:
    return value if value is None or type(value) is str else _safe_str(value)


def dagster_aws_snapshot(record: Any) -> Snapshot:
    """A snapshot (shipping/encoding.py's layout) whose message is the record's dagster-aws JSON.

    Dagster's run, job, step and op and the message id ride along as schema fields, so that a
    spilled record says where it came from (and ``dagster-logship replay`` can fill a stream
    template); the JSON is what the sink sends.
    """
    attributes = record.__dict__
    text = record_json(attributes)
    meta = attributes.get("dagster_meta")
    if not isinstance(meta, dict):
        meta = None
    process = attributes.get("process")
    if process is not None and type(process) is not int:
        process = None
    get = meta.get if meta is not None else (lambda _key: None)
    return (
        event_seconds(attributes),
        _str_or_none(attributes.get("levelname")) or "NOTSET",
        _str_or_none(attributes.get("name")) or "",
        process, text, None, None, None,
        meta is not None, None, _str_or_none(get("log_message_id")),
        _str_or_none(get("run_id")), _str_or_none(get("job_name")),
        _str_or_none(get("step_key")), _str_or_none(get("op_name")), None, None,
        None, None, None,
        None, len(text) + 256, len(text) + _SNAPSHOT_MEMORY,
    )  # fmt: skip


class DagsterAwsCloudWatchSink(CloudWatchSink):
    """Sends each event's ``message`` (the dagster-aws JSON) instead of the schema event.

    The batch is counted on the schema event's text, which holds that JSON escaped and is
    therefore a little larger: every request stays within PutLogEvents' limits.
    """

    _message_column = PAYLOAD  # the dagster-aws JSON, not the schema event's text

    def payload(self, text: str, event: dict[str, Any] | None, snap: Snapshot) -> Any:
        message = event.get("message") if event is not None else message_text(snap)
        return message if isinstance(message, str) else text
