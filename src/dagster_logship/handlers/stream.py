"""``JsonStreamHandler``: one JSON object per line on stdout or stderr, shipped by the core."""

from __future__ import annotations

import json
import logging
from typing import IO, Any

from ..dagster_records import dagster_snapshot
from ..shipping.encoding import json_default, sanitize
from ..shipping.handler import ShippingHandler
from ..shipping.options import ShippingOptions
from ..shipping.snapshots import safe_str
from ..sinks.stream import JsonStreamSink

__all__ = ["DagsterJsonFormatter", "JsonStreamHandler"]

_DAGSTER_META = "dagster_meta"
_DAGSTER_EVENT = "dagster_event"


class DagsterJsonFormatter(logging.Formatter):
    """The line Dagster's own ``json_console_logger`` prints for a record, and never raises.

    That logger dumps the record's attribute dict with ``json.dumps(..., sort_keys=True)``,
    leaving out the top-level ``dagster_event`` (the same event is under ``dagster_meta``, packed
    into JSON-ready form by Dagster's serdes). Where that dump raises, Dagster's logger loses the
    line; here it is written with those values made plain instead: ``exc_info`` as its traceback
    text, other objects as the schema's encoder writes them (``encoding.json_default``), cycles
    and unsortable keys as ``encoding.sanitize`` marks them.
    """

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[Any, Any] = {}
        try:
            for key, value in list(record.__dict__.items()):
                if key == _DAGSTER_EVENT:
                    continue
                if key == _DAGSTER_META:
                    value = _packed_meta(value)
                elif key == "exc_info" and type(value) is tuple and value and value[0] is not None:
                    value = self._exc_text(value)
                fields[key] = value
        except Exception as exc:  # a hostile record: say so, in a line that still parses
            fields["dagster_logship_error"] = f"record could not be read: {exc!r}"
        try:
            return json.dumps(fields, sort_keys=True, default=json_default)
        except Exception:  # cycles, keys of mixed types, nesting too deep
            return json.dumps(sanitize(fields), sort_keys=True)

    def _exc_text(self, exc_info: Any) -> str:
        try:
            return self.formatException(exc_info)
        except Exception as exc:
            return f"<traceback could not be formatted: {exc!r}>"


def _packed_meta(meta: Any) -> Any:
    """``dagster_meta`` with its event packed as Dagster's serdes packs it for its JSON logs."""
    if type(meta) is not dict or meta.get(_DAGSTER_EVENT) is None:
        return meta
    try:
        from dagster._serdes import pack_value

        event = pack_value(meta[_DAGSTER_EVENT])
    except Exception:
        event = safe_str(meta[_DAGSTER_EVENT])
    return {**meta, _DAGSTER_EVENT: event}


class JsonStreamHandler(ShippingHandler):
    """JSON lines on ``stream`` ("stdout", "stderr" or a text stream) in ``format`` json, gcp
    or dagster (the lines of Dagster's own ``json_console_logger``, made on the caller's thread
    by a :class:`DagsterJsonFormatter` set as this handler's formatter).

    Accepts every shared shipping key (``flush_interval``, ``queue_max_records``, ``overflow``,
    ``retry_deadline``, ``flush_timeout``, ``spill_path``...) as a keyword.
    """

    snapshot_record = staticmethod(dagster_snapshot)  # Dagster's metadata: schema fields

    def __init__(
        self,
        stream: str | IO[str] = "stdout",
        format: str = "json",
        level: int | str = logging.NOTSET,
        **shipping: Any,
    ) -> None:
        options, unknown = ShippingOptions.pick(shipping)
        if unknown:
            raise TypeError(
                f"unknown keyword(s) for JsonStreamHandler: {', '.join(sorted(unknown))}"
            )
        JsonStreamSink(stream, format)  # validate now, not in the worker
        key = ("stream", stream if isinstance(stream, str) else id(stream), format)
        super().__init__(lambda: JsonStreamSink(stream, format), key, options, level)
        if format == "dagster":
            self.setFormatter(DagsterJsonFormatter())
