"""One capture being shipped: a tailer feeding our handlers, and the end of it.

Each piece becomes a log record handed straight to our handler (not through ``logging``, so
nothing else sees it): its ``dagster_meta`` makes the event's ``message``, ``run_id``,
``job_name``, ``step_key`` and ``log_message_id`` fields, its other attributes become the
fields ``stream``, ``log_key``, ``offset``, ``length``, ``eol`` (and ``step_keys``,
``repository``, ``instigator``, ``tick`` where they apply). A capture starts with one start
marker per stream (``capture_started: true``, sent at once); when it ends, the rest of the files
is shipped, then one completion marker per stream (``capture_complete: true``, its ``offset``
the stream's size), then delivery is awaited for at most ``flush_timeout``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .keys import LogKeyFacts, event_id, joined
from .lines import Chunk
from .report import report
from .tailer import Tailer

__all__ = ["LOGGER_NAME", "CaptureSession", "record_for"]

#: The ``logger`` field of compute log events.
LOGGER_NAME = "dagster.compute_logs"

#: Handlers whose delivery did not finish in time at a capture's end: kept referenced so their
#: workers go on delivering, and deliver or spill at process exit (the shipping layer's exit
#: guarantees), instead of being stopped by garbage collection.
_unfinished: list[logging.Handler] = []
_MAX_UNFINISHED = 32

Extras = Callable[[str], Mapping[str, Any]]


def record_for(
    log_key: Sequence[str],
    facts: LogKeyFacts,
    io_name: str,
    text: str,
    offset: int,
    length: int,
    eol: bool,
    extras: Mapping[str, Any] | None = None,
    complete: bool = False,
    started: bool = False,
) -> logging.LogRecord:
    """The record whose event is one piece of a captured stream (or a start or completion
    marker)."""
    record = logging.LogRecord(LOGGER_NAME, logging.INFO, "", 0, text, None, None)
    record.dagster_meta = {
        "orig_message": text,
        "run_id": facts.run_id,
        "job_name": facts.job_name,
        "step_key": facts.step_key,
        "log_message_id": event_id(log_key, io_name, offset)
        + ("-end" if complete else "-start" if started else ""),
    }
    fields: dict[str, Any] = {
        "stream": io_name,
        "log_key": joined(log_key),
        "offset": offset,
        "length": length,
        "eol": eol,
        **facts.extras(),
    }
    if complete:
        fields["capture_complete"] = True
    if started:
        fields["capture_started"] = True
    if extras:
        fields.update(extras)
    record.__dict__.update(fields)
    return record


class CaptureSession:
    """Ships the files of one capture (``paths`` by stream name) through ``handlers``."""

    def __init__(
        self,
        log_key: Sequence[str],
        facts: LogKeyFacts,
        paths: Mapping[str, str],
        handlers: Mapping[str, logging.Handler],
        tail_interval: float,
        flush_timeout: float,
        extras: Extras | None = None,
        max_bytes: int = 16 * 1024 * 1024,
        max_records: int = 50_000,
    ) -> None:
        self.log_key = list(log_key)
        self.facts = facts
        self.handlers = dict(handlers)
        self.flush_timeout = flush_timeout
        self._extras = extras
        self._paths = dict(paths)
        self._in_flight = {id(h): InFlight(h, max_bytes, max_records)
                           for h in self.handlers.values()}
        self.tailer = Tailer(paths, self._ship, tail_interval, room=self._room)
        self.delivered: bool | None = None
        self.unshipped: dict[str, int] = {}

    def start(self) -> CaptureSession:
        """Send a start marker per stream at once, then follow the files. The marker makes the
        stream exist for readers, and has the client built and the stream created while the
        step runs rather than when it ends, where the step would wait for it."""
        for io_name in self.handlers:
            extras = self._extras(io_name) if self._extras is not None else None
            self.handlers[io_name].handle(record_for(
                self.log_key, self.facts, io_name, "", 0, 0, False, extras, started=True))
        for handler in {id(h): h for h in self.handlers.values()}.values():
            flush: Any = handler.flush
            with contextlib.suppress(Exception):
                flush(0.0)  # send now, without waiting for the batch window
        self.tailer.start()
        return self

    def _ship(self, io_name: str, chunk: Chunk) -> None:
        extras = self._extras(io_name) if self._extras is not None else None
        record = record_for(self.log_key, self.facts, io_name, chunk.text, chunk.offset,
                            chunk.length, chunk.eol, extras)
        handler = self.handlers[io_name]
        self._in_flight[id(handler)].shipped(len(chunk.text) + 512)
        handler.handle(record)

    def _room(self, io_name: str) -> bool:
        return self._in_flight[id(self.handlers[io_name])].has_room()

    def finish(self) -> bool:
        """Ship the rest and the markers, then wait for delivery, all within ``flush_timeout``.
        True if everything was delivered or spilled in time. Never raises."""
        deadline = time.monotonic() + self.flush_timeout
        try:
            if not self.tailer.stop(deadline):
                self._report_unshipped()
            for io_name, size in self.tailer.positions().items():
                extras = self._extras(io_name) if self._extras is not None else None
                self.handlers[io_name].handle(record_for(
                    self.log_key, self.facts, io_name, "", size, 0, True, extras, complete=True))
            self.delivered = self._flush(deadline)
        except Exception as exc:  # never into the step
            report(f"finishing the compute log capture {joined(self.log_key)} failed: {exc!r}")
            self.delivered = False
        return self.delivered

    def _report_unshipped(self) -> None:
        """The service could not keep up before ``flush_timeout``: say what was left, and where
        it stays (the capture file is then kept)."""
        for io_name, position in self.tailer.positions().items():
            path = self._paths[io_name]
            try:
                size = os.path.getsize(path)
            except OSError:
                continue
            if size > position:
                self.unshipped[io_name] = size - position
                report(f"{size - position} byte(s) of the captured {io_name} of "
                       f"{joined(self.log_key)} were not shipped within flush_timeout; they "
                       f"stay in {path} from byte {position}")

    def _flush(self, deadline: float) -> bool:
        unique = list({id(h): h for h in self.handlers.values()}.values())
        done = True
        for handler in unique:
            flush: Any = handler.flush
            try:
                ok = bool(flush(max(0.0, deadline - time.monotonic())))
            except TypeError:  # a plain logging.Handler
                handler.flush()
                ok = True
            if ok:
                handler.close()
            else:
                done = False
                _keep(handler)
        return done


class InFlight:
    """Pieces handed to one handler and not yet delivered, spilled, rejected or dropped: the
    tailer reads on only while they stay under ``max_bytes`` and ``max_records`` (sizes are
    estimates of what a queued record holds)."""

    def __init__(self, handler: logging.Handler, max_bytes: int, max_records: int) -> None:
        self._handler = handler
        self._max_bytes = max_bytes
        self._max_records = max_records
        self._sizes: deque[int] = deque()
        self._bytes = 0

    def shipped(self, size: int) -> None:
        self._sizes.append(size)
        self._bytes += size

    def has_room(self) -> bool:
        stats: Any = getattr(self._handler, "stats", None)
        if not isinstance(stats, dict):
            return True
        done = sum(int(stats.get(k, 0)) for k in ("delivered", "spilled", "rejected", "dropped"))
        pending = max(0, int(stats.get("enqueued", 0)) - done)
        while len(self._sizes) > pending:  # the oldest were dealt with first
            self._bytes -= self._sizes.popleft()
        return len(self._sizes) < self._max_records and self._bytes < self._max_bytes


def _keep(handler: logging.Handler) -> None:
    """Keep ``handler`` delivering (or spilling) after its capture ended. A long-lived process
    (a code server ticking sensors through an outage) keeps at most ``_MAX_UNFINISHED``: the
    oldest is closed on a background thread (bounded by its ``flush_timeout``)."""
    _unfinished.append(handler)
    while len(_unfinished) > _MAX_UNFINISHED:
        oldest = _unfinished.pop(0)
        threading.Thread(target=oldest.close, name="dagster-logship-close", daemon=True).start()
