"""JSON lines on stdout or stderr, for container log agents.

``format="json"`` writes the schema event as it is. ``format="gcp"`` adds the keys that Google's
agents on GKE and Cloud Run read from a line (``severity``, ``message``, ``time``,
``logging.googleapis.com/labels``, ``logging.googleapis.com/sourceLocation`` and trace fields),
so that stdout alone gives structured entries in Cloud Logging. ``format="dagster"`` writes each
event's message as the line: the handler's formatter made it the line Dagster's own
``json_console_logger`` prints (``handlers/stream.py``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import IO, Any
from weakref import WeakSet

from ..shipping import stdio
from ..shipping.encoding import build_event, encode
from ..shipping.options import ConfigError
from ..shipping.retry import BatchRejectedError
from ..shipping.sink import PAYLOAD, ItemTuple, SendResult, Sink, SinkLimits
from ..shipping.snapshots import Snapshot, message_text
from .gcp_format import (
    TRACEBACK_MOVED,
    needs_project,
    severity_of,
    source_location_of,
    structure,
)

__all__ = ["FORMATS", "STREAMS", "JsonStreamSink", "to_gcp_structured"]

STREAMS = ("stdout", "stderr")
FORMATS = ("json", "gcp", "dagster")
#: format dagster writes a Dagster line whole: one line is never split into parts, up to this.
_DAGSTER_LINE_LIMIT = 16 * 1024 * 1024
_GCP = "logging.googleapis.com/"


def to_gcp_structured(event: dict[str, Any]) -> dict[str, Any]:
    """The event with the special keys Google's logging agents understand.

    The extras ``labels``, ``http_request`` and ``json_fields`` become
    ``logging.googleapis.com/labels``, ``httpRequest`` and top-level fields; trace ids become
    ``logging.googleapis.com/trace`` as ``projects/{GOOGLE_CLOUD_PROJECT}/traces/{id}``, or the
    bare id when that variable is unset (a process writing to stdout may know no project); an
    exception adds ``stack_trace`` and the ``@type`` Error Reporting reads
    (see :mod:`..gcp_format`). A field named like one of the special keys is written as
    ``extra_<name>``."""
    project = (os.environ.get("GOOGLE_CLOUD_PROJECT") or None) if needs_project(event) else None
    shaped = structure(event, None, project)
    payload = shaped.payload
    out: dict[str, Any] = {
        "severity": severity_of(event.get("level")),
        "message": payload.get("message"),
        "time": event.get("timestamp"),
    }
    if shaped.labels:
        out[_GCP + "labels"] = shaped.labels
    location = source_location_of(event)
    if location:
        out[_GCP + "sourceLocation"] = location
    for key, value in shaped.trace.items():
        out[_GCP + key] = value
    if shaped.http_request:
        out["httpRequest"] = shaped.http_request
    for key, value in payload.items():
        if key not in ("timestamp", "message"):
            out[key if key not in out else f"extra_{key}"] = value
    return out


def _gcp_line(event: dict[str, Any], max_bytes: int) -> str:
    """The ``format: gcp`` line of ``event``. When the traceback, written twice (``stack_trace``
    for Error Reporting and ``exception.traceback``), makes the line larger than ``max_bytes``,
    the second copy gives way to a pointer: a line the agent cannot take whole is cut."""
    out = to_gcp_structured(event)
    text, nbytes = encode(out)
    if nbytes > max_bytes and "stack_trace" in out and "stack_trace" not in event:
        exception = out.get("exception")
        if isinstance(exception, dict) and isinstance(exception.get("traceback"), str):
            out["exception"] = dict(exception, traceback=TRACEBACK_MOVED)
            text = encode(out)[0]
    return text


class JsonStreamSink(Sink):
    """Writes one JSON object per line to a stream, resolved at write time.

    ``"stdout"``/``"stderr"`` are looked up on :mod:`sys` when a batch is written, so that a
    stream object installed after the handler was built (test capture, a host's own stream)
    applies. A file descriptor redirected underneath the same ``sys.stdout`` (Dagster's
    compute-log capture, mirrored to the real stdout by a ``tail`` that can be cut short) is
    bypassed: lines go to the stdout the process had (see :mod:`..shipping.stdio`).
    """

    limits = SinkLimits(
        max_batch_events=1000, max_batch_bytes=1024 * 1024, max_event_bytes=256 * 1024
    )

    def __init__(self, stream: str | IO[str] = "stdout", format: str = "json") -> None:
        if isinstance(stream, str) and stream not in STREAMS:
            raise ConfigError("stream", f"got {stream!r}", "use stdout or stderr")
        if format not in FORMATS:
            raise ConfigError("format", f"got {format!r}", "use json, gcp or dagster")
        self.stream = stream
        self.format = format
        if format == "dagster":  # a part of a JSON line would not be JSON
            self.limits = SinkLimits(1000, _DAGSTER_LINE_LIMIT, _DAGSTER_LINE_LIMIT)
        self.destination = stream if isinstance(stream, str) else "stream"
        self._write_lock = threading.Lock()
        if isinstance(stream, str):
            stdio.pin(stream)  # before a host redirects the descriptor (see shipping/stdio.py)
        _stream_sinks.add(self)

    def payload(self, text: str, event: dict[str, Any] | None, snap: Snapshot) -> Any:
        if self.format == "dagster":
            message = event.get("message") if event is not None else message_text(snap)
            return message if isinstance(message, str) else text
        if self.format == "gcp":
            fields = build_event(snap) if event is None else event
            return _gcp_line(fields, self.limits.max_event_bytes)
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
