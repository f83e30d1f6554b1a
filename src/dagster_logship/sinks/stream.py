"""JSON lines on stdout or stderr, for container log agents.

``format="json"`` writes the schema event as it is. ``format="gcp"`` adds the keys that Google's
agents on GKE and Cloud Run read from a line (``severity``, ``message``, ``time``,
``logging.googleapis.com/labels``, ``logging.googleapis.com/sourceLocation`` and trace fields),
so that stdout alone gives structured entries in Cloud Logging.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import IO, Any
from weakref import WeakSet

from ..gcp_format import labels_of, severity_of, source_location_of, trace_fields_of
from ..shipping import stdio
from ..shipping.encoding import encode
from ..shipping.options import ConfigError
from ..shipping.retry import BatchRejectedError
from ..shipping.sink import PAYLOAD, ItemTuple, SendResult, Sink, SinkLimits

__all__ = ["FORMATS", "STREAMS", "JsonStreamSink", "to_gcp_structured"]

STREAMS = ("stdout", "stderr")
FORMATS = ("json", "gcp")
_GCP = "logging.googleapis.com/"


def to_gcp_structured(event: dict[str, Any]) -> dict[str, Any]:
    """The event with the special keys Google's logging agents understand."""
    out: dict[str, Any] = {
        "severity": severity_of(event.get("level")),
        "message": event.get("message"),
        "time": event.get("timestamp"),
    }
    labels = labels_of(event)
    if labels:
        out[_GCP + "labels"] = labels
    location = source_location_of(event)
    if location:
        out[_GCP + "sourceLocation"] = location
    for key, value in trace_fields_of(event).items():
        out[_GCP + key] = value
    for key, value in event.items():
        if key not in out and key not in ("timestamp",):
            out[key] = value
    return out


class JsonStreamSink(Sink):
    """Writes one JSON object per line to a stream, resolved at write time.

    ``"stdout"``/``"stderr"`` are looked up on :mod:`sys` when a batch is written, so that a
    stream object installed after the handler was built (test capture, a host's own stream)
    applies. A file descriptor redirected underneath the same ``sys.stdout`` (Dagster's
    compute-log capture, mirrored to the real stdout by a ``tail`` that can be cut short) is
    bypassed: lines go to the stdout the process had (see :mod:`..shipping.stdio`).
    """

    plain_items = True  # send() reads items by position
    limits = SinkLimits(
        max_batch_events=1000, max_batch_bytes=1024 * 1024, max_event_bytes=256 * 1024
    )

    def __init__(self, stream: str | IO[str] = "stdout", format: str = "json") -> None:
        if isinstance(stream, str) and stream not in STREAMS:
            raise ConfigError("stream", f"got {stream!r}", "use stdout or stderr")
        if format not in FORMATS:
            raise ConfigError("format", f"got {format!r}", "use json or gcp")
        self.stream = stream
        self.format = format
        self.needs_event = format == "gcp"  # format json: the line is the event's text
        self.destination = stream if isinstance(stream, str) else "stream"
        self._write_lock = threading.Lock()
        if isinstance(stream, str):
            stdio.pin(stream)  # before a host redirects the descriptor (see shipping/stdio.py)
        _stream_sinks.add(self)

    def payload(self, item_event: dict[str, Any], text: str) -> Any:
        if self.format == "gcp":
            return encode(to_gcp_structured(item_event))[0]
        return text

    def _resolve(self) -> tuple[IO[str] | None, int | None]:
        if isinstance(self.stream, str):
            # See shipping/stdio.py: a descriptor redirected under sys.stdout (Dagster's
            # compute-log capture) is bypassed in favour of the stdout the process had.
            return stdio.resolve(self.stream)
        return self.stream, None

    def send(self, items: Sequence[ItemTuple]) -> SendResult | None:
        with self._write_lock:
            stream, fd = self._resolve()
            if stream is None:
                raise BatchRejectedError(f"{self.destination} is not available")
            try:
                stdio.write_lines(stream, [item[PAYLOAD] for item in items], fd)
            except (ValueError, OSError) as exc:  # closed or broken stream
                raise BatchRejectedError(
                    f"{self.destination} not writable: {exc}",
                    diagnostic=f"cannot write to {self.destination} ({exc}); spilling",
                ) from exc
        return None


#: Kept for importers: see :data:`..shipping.stdio.ATOMIC_WRITE`.
ATOMIC_WRITE = stdio.ATOMIC_WRITE


# A fork in the middle of a write would leave the child's stdout buffer locked by a thread that
# does not exist there, and the child's first write would hang. Forks wait for the write to end.
_stream_sinks: WeakSet[JsonStreamSink] = WeakSet()
_held: list[JsonStreamSink] = []


def _before_fork() -> None:
    for sink in list(_stream_sinks):
        if sink._write_lock.acquire(timeout=5):
            _held.append(sink)


def _after_fork_in_parent() -> None:
    while _held:
        _held.pop()._write_lock.release()


def _after_fork_in_child() -> None:
    _held.clear()
    for sink in list(_stream_sinks):
        sink._write_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )
