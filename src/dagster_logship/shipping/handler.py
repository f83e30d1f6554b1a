"""``ShippingHandler``: the ``logging.Handler`` every destination is used through.

``emit`` snapshots the record and hands it to the destination's worker; nothing slow happens on
the caller's thread and nothing raises into it. ``close`` flushes (bounded) and lets go of the
worker, but the handler stays usable: hosts such as Dagster, ``dictConfig`` and
``logging.shutdown`` close handlers that are still attached, and a record emitted afterwards is
shipped by a worker started again.
"""

from __future__ import annotations

import logging
import sys
import weakref
from collections.abc import Callable, Hashable
from typing import Any

from . import stdio
from .lifecycle import acquire, current, release, release_later
from .options import ShippingOptions
from .recursion import flags as _flags
from .sink import Sink
from .snapshots import Snapshot, snapshot, with_message
from .spill import diagnostic
from .worker import Worker

#: What ``Handler.handle`` returns for a record it emitted: the record on Python >= 3.12.
_FILTERS_RETURN_RECORDS = sys.version_info >= (3, 12)

__all__ = ["ShippingHandler"]


def _holds_logging_lock() -> bool:
    """True when this thread holds the ``logging`` module lock.

    ``logging.config.dictConfig`` (which Dagster calls each time it builds a log manager on an
    instance with settings) closes and flushes every live handler while holding that lock. The
    worker thread needs the same lock whenever an SDK module it imports lazily calls
    ``logging.getLogger`` or a logger's level cache was cleared, so waiting for the worker there
    would deadlock until ``flush_timeout``. Not waiting loses nothing: the worker goes on
    delivering once the lock is released.
    """
    lock = getattr(logging, "_lock", None)
    is_owned = getattr(lock, "_is_owned", None)
    try:
        return bool(is_owned()) if is_owned is not None else False
    except Exception:
        return False


class ShippingHandler(logging.Handler):
    """Ships records to one destination through a shared, batching worker.

    ``key`` identifies the destination (two handlers with equal keys share one worker and one
    client in a process); ``sink_factory`` builds the sink when a worker is first needed and
    must not do network I/O. ``snapshot_record`` (default: the class's) makes the snapshot of a
    record on the caller's thread.
    """

    #: What ``emit`` keeps of a record: the core's generic :func:`~.snapshots.snapshot` here.
    #: Handlers for Dagster's records set ``dagster_logship.dagster_records.dagster_snapshot``,
    #: which also reads the run context Dagster attaches to them (the core knows no Dagster).
    snapshot_record: Callable[[logging.LogRecord], Snapshot] = staticmethod(snapshot)

    # Class defaults, so that a handler whose constructor raised (a wrong option) can still be
    # flushed and closed by ``logging.shutdown``, which finds it in logging's handler list.
    _worker: Worker | None = None
    #: The worker released by the last close(), until a record starts another one.
    _closed_worker: Worker | None = None
    _finalizer: weakref.finalize[Any, Any] | None = None
    _last_stats: dict[str, int] | None = None
    _suppressed = 0
    _emit_errors = 0
    _format_errors = 0
    _formatter: logging.Formatter | None = None
    #: A subclass's own ``emit`` is called by ``handle``; ours is inlined there.
    _emit_overridden = False
    #: Whether a logger may hand this handler snapshots (see :meth:`takes_snapshots`): not if a
    #: subclass has its own ``emit`` or ``handle``, which would expect the record.
    _takes_snapshots = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._emit_overridden = cls.emit is not ShippingHandler.emit
        cls._takes_snapshots = not cls._emit_overridden and cls.handle is ShippingHandler.handle

    def __init__(
        self,
        sink_factory: Callable[[], Sink],
        key: Hashable,
        options: ShippingOptions | None = None,
        level: int | str = logging.NOTSET,
        snapshot_record: Callable[[logging.LogRecord], Snapshot] | None = None,
    ) -> None:
        super().__init__(level)
        # On the instance, a plain function: no method binding on every record.
        self.snapshot_record = snapshot_record or type(self).snapshot_record
        self.options = options if options is not None else ShippingOptions()
        self._sink_factory = sink_factory
        self._key = (key, self.options)
        self._worker: Worker | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._last_stats: dict[str, int] | None = None
        self._suppressed = 0
        self._emit_errors = 0
        stdio.pin("stderr")  # where diagnostics and stderr spills go (see stdio.py)
        self._attach()

    def _attach(self) -> Worker:
        options = self.options
        worker = acquire(self._key, lambda: Worker(self._sink_factory(), options))
        finalizer = weakref.finalize(self, release_later, self._key, worker)
        finalizer.atexit = False
        self._worker, self._finalizer, self._closed_worker = worker, finalizer, None
        return worker

    @property
    def worker(self) -> Worker | None:
        """The worker this handler feeds now (None while closed): its ``stats_snapshot()``,
        ``holding()`` and ``flush()`` are what diagnostics and tests look at."""
        return self._worker

    @property
    def destination(self) -> str:
        worker = self._worker
        return worker.sink.destination if worker is not None else "closed"

    def handle(self, record: logging.LogRecord) -> Any:
        """Filter and emit without taking the handler's lock: ``emit`` is thread-safe on its
        own, and the lock would serialize every logging thread behind one another."""
        if self.filters:
            rv = self.filter(record)
            if isinstance(rv, logging.LogRecord):  # Python >= 3.12 filters may return a record
                record = rv
            if not rv:
                return rv
        if self._emit_overridden:
            self.emit(record)
        # emit(), inlined: this is every log call's path.
        elif _flags.active:
            self._suppressed += 1
        else:
            try:
                (self._worker or self._attach()).put(self.snapshot_record(record))
            except Exception as exc:
                self._emit_failed(exc)
        return record if _FILTERS_RETURN_RECORDS else True

    def emit(self, record: logging.LogRecord) -> None:
        if _flags.active:  # in_shipping_thread(), without the call
            # A record made while we send (botocore, urllib3, google): shipping it would recurse.
            self._suppressed += 1
            return
        try:
            worker = self._worker or self._attach()
            fmt = self._formatter
            worker.put(
                self.snapshot_record(record) if fmt is None else self._formatted(record, fmt)
            )
        except Exception as exc:  # never into the caller's code
            self._emit_failed(exc)

    @property
    def formatter(self) -> logging.Formatter | None:
        """The ``logging.Formatter`` that makes each event's ``message``, or None (the default:
        the record's own message). Set by ``setFormatter`` or dictConfig's ``formatter``."""
        return self._formatter

    @formatter.setter
    def formatter(self, fmt: logging.Formatter | None) -> None:
        # The record is gone once emit returns, so a formatter must run in emit, on the
        # caller's thread: records then take emit() (not handle's inlined path) and no logger
        # may hand over a snapshot. Without one, neither path pays anything.
        self._formatter = fmt
        if fmt is None:
            self.__dict__.pop("_emit_overridden", None)
            self.__dict__.pop("_takes_snapshots", None)
        else:
            self._emit_overridden = True
            self._takes_snapshots = False

    def _formatted(self, record: logging.LogRecord, fmt: logging.Formatter) -> Snapshot:
        """The record's snapshot with ``fmt.format(record)`` as its message; if the formatter
        raises, the record's own message (reported once on stderr)."""
        snap = self.snapshot_record(record)
        try:
            text = fmt.format(record)
        except Exception as exc:
            self._format_errors += 1
            if self._format_errors == 1:
                diagnostic(
                    f"the formatter of {self!r} raised {exc!r}; shipping the record's "
                    "unformatted message instead (reported once)"
                )
            return snap
        return with_message(snap, text)

    def takes_snapshots(self, level: int) -> bool:
        """True when a record at ``level`` would be emitted as it is: no filter, no subclass
        ``emit`` or ``handle``, the level passes. Then a logger may hand over a snapshot it
        built itself (see :meth:`emit_snapshot`) instead of a record."""
        return level >= self.level and not self.filters and self._takes_snapshots

    def emit_snapshot(self, snap: Snapshot) -> None:
        """``emit`` for a record already snapshotted (``loggers/_relay.py``): the same
        suppression on a shipping thread, the same queue, never raises."""
        if _flags.active:
            self._suppressed += 1
            return
        try:
            (self._worker or self._attach()).put(snap)
        except Exception as exc:
            self._emit_failed(exc)

    def _emit_failed(self, exc: Exception) -> None:
        self._emit_errors += 1
        if self._emit_errors == 1:
            diagnostic(f"could not enqueue a record for {self.destination}: {exc!r}")

    def flush(self, timeout: float | None = None) -> bool:  # type: ignore[override]
        """Wait until every record emitted before this call is delivered or spilled.

        Returns False if ``timeout`` (default ``flush_timeout``) passed first.
        """
        worker = self._worker or current(self._key) or self._closed_worker
        if worker is None:
            return True
        if _holds_logging_lock():
            timeout = 0.0  # see _holds_logging_lock: waiting here could deadlock
        return worker.flush(timeout)

    def settle(self, reason: str, timeout: float | None = None) -> bool:
        """Deliver what this destination holds within ``timeout`` (default ``flush_timeout``),
        then spill the rest with ``reason``: nothing of it is left pending (a run's end). True
        if everything was delivered. Under ``logging``'s lock it only wakes the worker."""
        # Closed (Dagster closes handlers as it builds each log manager), this handler's
        # records may be in the worker a newer handler of the same destination now uses.
        worker = self._worker or current(self._key) or self._closed_worker
        if worker is None:
            return True
        if _holds_logging_lock():  # see _holds_logging_lock: waiting here could deadlock
            return worker.flush(0.0)
        return worker.settle(self.options.flush_timeout if timeout is None else timeout, reason)

    def close(self) -> None:
        """Flush (up to ``flush_timeout``) and release the worker; later emits start it again."""
        worker, finalizer = self._worker, self._finalizer
        if worker is not None and finalizer is not None:
            # Under dictConfig the worker keeps draining after we return (see _holds_logging_lock).
            worker.flush(0.0 if _holds_logging_lock() else self.options.flush_timeout)
            self._last_stats = self._stats_of(worker)
            # Closed under dictConfig, it may still hold records: a later flush or a run's end
            # waits for them (Dagster closes every handler each time it builds a log manager).
            self._worker, self._closed_worker = None, worker
            if finalizer.detach() is not None:
                release(self._key, worker)
        super().close()

    def _stats_of(self, worker: Worker) -> dict[str, int]:
        stats = worker.stats_snapshot()
        stats["suppressed"] += self._suppressed
        return stats

    @property
    def stats(self) -> dict[str, int]:
        """Delivery counters of this handler's destination in this process."""
        worker = self._worker
        if worker is None:
            return dict(self._last_stats or {})
        return self._stats_of(worker)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.destination} ({logging.getLevelName(self.level)})>"
