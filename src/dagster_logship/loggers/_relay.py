"""The ``logging.Logger`` our ``@logger`` definitions return.

Dagster relays each ``context.log`` call to every run logger as ``logger.log(level, line,
exc_info=..., extra={"dagster_meta": ..., ...})`` (``DagsterLogHandler.emit``). A plain logger then
walks the stack for the caller, builds a ``LogRecord`` (clock, thread, process and file-name
lookups) and hands it on, and our handler reads a dozen values back out of it. For the common
call (no %-args, no exception, no user extras) this logger builds the handler's snapshot from the
call's own values instead: ~3% of the wall time of a job that logs 10,000 times (benchmarks/,
"In Dagster"). Every other call, and any setup the shortcut could not honour (a filter, another
handler, propagation, a record factory, metadata that fails to read), takes ``logging.Logger``'s
own path.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from ..dagster_records import dagster_snapshot, relayed_snapshot
from ..shipping.handler import ShippingHandler
from .run_end import RUN_END, RUN_START, STEP_END, boundary

__all__ = ["RelayLogger"]

#: Keyword arguments Dagster passes with a relayed call.
_RELAY_KWARGS = frozenset({"exc_info", "extra"})
#: Keys of ``extra`` that carry nothing but Dagster's own metadata (see DAGSTER_NOT_EXTRA).
_DAGSTER_EXTRA = frozenset({"dagster_meta", "dagster_event", "dagster_event_batch_metadata"})
_getLevelName = logging.getLevelName
_getLogRecordFactory = logging.getLogRecordFactory
_LogRecord = logging.LogRecord


#: Runs whose start this process logged (it runs the whole run: a step's end does not settle
#: its loggers, the run's end does). Emptied as runs end.
_runs_here: set[Any] = set()
if hasattr(os, "register_at_fork"):  # a forked step process does not run its parent's runs
    os.register_at_fork(after_in_child=_runs_here.clear)


class RelayLogger(logging.Logger):
    """A ``logging.Logger`` that hands Dagster's relayed calls straight to its shipping handler."""

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if args or type(level) is not int or not self.isEnabledFor(level) or not self._relay(
            level, kwargs
        ):
            # One frame up: the record names our caller (Dagster's relaying call), as a plain
            # logger's would, not this method.
            kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 1
            super().log(level, msg, *args, **kwargs)
        # Whatever the level: Dagster's run and step events come at DEBUG, below most loggers'.
        extra = kwargs.get("extra")
        if type(extra) is dict and extra.get("dagster_event") is not None:
            self._at_event(extra["dagster_event"], extra.get("dagster_meta"))

    def _at_event(self, dagster_event: Any, meta: Any) -> None:
        """Deliver what the handlers hold when the run, or this step process, ends, within each
        handler's ``flush_timeout``, then spill the rest: Dagster never flushes its loggers, its
        callers read the destination as soon as the run returns, and a step process that waited
        here does not wait again at exit."""
        kind = boundary(dagster_event)
        if kind is None:
            return
        run_id = meta.get("run_id") if isinstance(meta, dict) else None
        # Dagster builds its loggers again for the steps of the same process: which process
        # runs the whole run is known per process and run, not per logger.
        if kind == RUN_START:
            _runs_here.add(run_id)
            return
        if kind == STEP_END and run_id in _runs_here:
            return
        if kind == RUN_END:
            _runs_here.discard(run_id)
        where = "the run" if kind != STEP_END else "this step process's work"
        for handler in self.handlers:
            if isinstance(handler, ShippingHandler):
                handler.settle(
                    f"{where} ended: not delivered within flush_timeout "
                    f"({handler.options.flush_timeout:g}s)"
                )

    def _relay(self, level: int, kwargs: dict[str, Any]) -> bool:
        """Ship a relayed call without a ``LogRecord``; False if it is not one, or if this
        logger's setup needs the record (then nothing was shipped)."""
        extra = kwargs.get("extra")
        if (
            type(extra) is not dict
            or kwargs.get("exc_info")
            or not kwargs.keys() <= _RELAY_KWARGS
            or not extra.keys() <= _DAGSTER_EXTRA
            or self.filters
            or (self.propagate and self.parent is not None)
            # a record factory (OpenTelemetry's, say) adds attributes that ship as extras
            or _getLogRecordFactory() is not _LogRecord
        ):
            return False
        meta = extra.get("dagster_meta")
        handlers = self.handlers
        if type(meta) is not dict or len(handlers) != 1:
            return False
        handler = handlers[0]
        if (
            not isinstance(handler, ShippingHandler)
            or not handler.takes_snapshots(level)
            # the relay makes what this function would make of the record
            or handler.snapshot_record is not dagster_snapshot
        ):
            return False
        try:
            snap = relayed_snapshot(
                time.time(),
                _getLevelName(level),
                self.name,
                os.getpid() if logging.logProcesses else None,
                meta,
            )
        except Exception:  # odd metadata (a tags mapping that raises): the record's path copes
            return False
        if snap is None:
            return False
        handler.emit_snapshot(snap)
        return True
