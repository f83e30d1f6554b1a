"""The part of our compute log managers that knows no service: capture, tail, ship, read back.

Capturing is Dagster's own (``LocalComputeLogManager``: file descriptors 1 and 2 of the step
process point at a file, so subprocesses are captured too, and the file is mirrored to the real
stdout). While the capture runs a :class:`~.capture.CaptureSession` ships each new line through
our handlers; when it ends, the rest and a completion marker, bounded by ``flush_timeout``; then
the local files are deleted. Reads (the UI, ``dagster`` commands, the daemon's tick views) come
from the service only, through a per-process cache of what was already listed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from abc import abstractmethod
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import IO, Any

from dagster._core.storage.cloud_storage_compute_log_manager import (
    PollingComputeLogSubscriptionManager,
)
from dagster._core.storage.compute_log_manager import (
    CapturedLogContext,
    CapturedLogMetadata,
    CapturedLogSubscription,
    ComputeIOType,
    ComputeLogManager,
)
from dagster._core.storage.local_compute_log_manager import (
    IO_TYPE_EXTENSION,
    LocalComputeLogManager,
)
from dagster._serdes import ConfigurableClass, ConfigurableClassData

from .capture import CaptureSession
from .config import default_local_dir, pick_shipping, positive_seconds
from .keys import IO_NAMES, LogKeyFacts, find_run_context, joined
from .readback import StreamCache, StreamState, due
from .report import pin_stderr, report

__all__ = ["ShippingComputeLogManager"]

_log = logging.getLogger("dagster_logship.compute_logs")
#: A run that ended this long (beyond flush_timeout) ago without a completion marker in the
#: service (its step process was killed, or the marker was spilled) counts as complete.
_MARKER_GRACE_SECONDS = 30.0
_COMPLETED_KEPT = 10_000


class ShippingComputeLogManager(ComputeLogManager[Any], ConfigurableClass):
    """Base of :class:`CloudWatchComputeLogManager` and :class:`GcpComputeLogManager`.

    Subclasses say how to build the handlers for one capture, how to list a stream's events,
    and how to name, link, list and delete streams.
    """

    def __init__(
        self,
        *,
        local_dir: str | None = None,
        tail_interval: float = 0.2,
        read_interval: float = 1.0,
        inst_data: ConfigurableClassData | None = None,
        **shipping: Any,
    ) -> None:
        self._shipping, unknown = pick_shipping(shipping)
        if unknown:
            raise TypeError(f"unknown keyword(s) for {type(self).__name__}: "
                            f"{', '.join(sorted(unknown))}")
        self._flush_timeout = float(self._shipping.get("flush_timeout", 30.0))
        self._tail_interval = positive_seconds("tail_interval", tail_interval)
        self._read_interval = positive_seconds("read_interval", read_interval)
        self._local_dir = local_dir or default_local_dir()
        self._local = LocalComputeLogManager(self._local_dir)
        self._inst_data = inst_data
        self._cache = StreamCache()
        #: Keys captured to the end in this process (the newest ``_COMPLETED_KEPT``).
        self._completed: OrderedDict[tuple[str, ...], None] = OrderedDict()
        self._read_errors = 0
        self._subscriptions = PollingComputeLogSubscriptionManager(self)  # type: ignore[no-untyped-call]
        pin_stderr()  # before any capture: our reports must not land in a captured file

    # -- ConfigurableClass ------------------------------------------------------------------

    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> ShippingComputeLogManager:
        return cls(inst_data=inst_data, **dict(config_value))

    # -- what a service provides ------------------------------------------------------------

    @abstractmethod
    def _handlers(self, log_key: Sequence[str], facts: LogKeyFacts,
                  io_names: Sequence[str]) -> dict[str, logging.Handler]:
        """Handlers for one capture, by stream name (no network I/O)."""

    def _record_extras(self, log_key: Sequence[str], io_name: str) -> Mapping[str, Any] | None:
        """Fields a service needs on every event of a stream (Cloud Logging's labels)."""
        return None

    @abstractmethod
    def _refresh(self, log_key: Sequence[str], io_name: str, state: StreamState) -> None:
        """Add the stream's events listed since ``state.token`` to ``state``."""

    @abstractmethod
    def _location(self, log_key: Sequence[str], io_name: str) -> str:
        """Where the stream is, for people."""

    @abstractmethod
    def _console_url(self, log_key: Sequence[str], io_name: str) -> str | None:
        """The service console's page of the stream, if there is one."""

    @abstractmethod
    def _delete(self, log_key: Sequence[str] | None, prefix: Sequence[str] | None) -> None:
        """Delete the streams of ``log_key``, or of every key under ``prefix``."""

    @abstractmethod
    def _keys_under(self, prefix: Sequence[str], io_name: str) -> list[list[str]]:
        """The log keys under ``prefix`` that have a stream ``io_name``."""

    # -- capture ----------------------------------------------------------------------------

    def _paths(self, log_key: Sequence[str], io_names: Sequence[str]) -> dict[str, str]:
        return {
            name: self._local.get_captured_local_path(
                log_key, IO_TYPE_EXTENSION[ComputeIOType(name)])
            for name in io_names
        }

    def _facts(self, log_key: Sequence[str]) -> LogKeyFacts:
        facts = LogKeyFacts.of(log_key)
        if not facts.is_run or facts.run_id is None:
            return facts
        job_name, step_keys = find_run_context(facts.run_id)
        if job_name is None:
            with contextlib.suppress(Exception):
                run = self._instance.get_run_by_id(facts.run_id) if self.has_instance else None
                job_name = run.job_name if run is not None else None
        return LogKeyFacts.of(log_key, job_name=job_name, step_keys=step_keys)

    def _start(self, log_key: Sequence[str], io_names: Sequence[str]) -> CaptureSession | None:
        """A running session for ``log_key``, or None (reported) if it could not start: the
        step then runs with Dagster's local capture alone."""
        try:
            facts = self._facts(log_key)
            handlers = self._handlers(log_key, facts, io_names)
            return CaptureSession(
                log_key, facts, self._paths(log_key, io_names), handlers,
                self._tail_interval, self._flush_timeout,
                extras=lambda io_name: self._record_extras(log_key, io_name) or {},
                # A quarter of the queue's bounds: the tailer never makes the queue overflow.
                max_bytes=max(1, int(self._shipping.get("queue_max_bytes", 64 << 20)) // 4),
                max_records=max(1, int(self._shipping.get("queue_max_records", 100_000)) // 4),
            ).start()
        except Exception as exc:
            report(f"compute logs of {joined(log_key)} are not shipped: {exc!r}")
            return None

    def _end(self, log_key: Sequence[str], session: CaptureSession | None) -> None:
        if session is not None:
            session.finish()
        self._completed[tuple(log_key)] = None
        while len(self._completed) > _COMPLETED_KEPT:
            self._completed.popitem(last=False)
        if session is not None and session.unshipped:
            return  # the rest is only in the capture files: keep them (reported)
        with contextlib.suppress(Exception):
            self._local.delete_logs(log_key=log_key)

    @contextmanager
    def capture_logs(self, log_key: Sequence[str]) -> Iterator[CapturedLogContext]:
        session = self._start(log_key, IO_NAMES)
        try:
            with self._local.capture_logs(log_key) as context:
                yield context
        finally:
            self._end(log_key, session)

    @contextmanager
    def open_log_stream(
        self, log_key: Sequence[str], io_type: ComputeIOType
    ) -> Iterator[IO[Any] | None]:
        # Line-buffered, so that each line a sensor logs reaches the file (and the tailer) at
        # once; Dagster's local manager buffers until the stream is closed.
        path = self._paths(log_key, [io_type.value])[io_type.value]
        os.makedirs(os.path.dirname(path), exist_ok=True)
        session = self._start(log_key, [io_type.value])
        try:
            with open(path, "a", buffering=1, encoding="utf-8") as stream:
                yield stream
        finally:
            self._end(log_key, session)

    # -- reads ------------------------------------------------------------------------------

    def _state(self, log_key: Sequence[str], io_name: str) -> StreamState:
        """The stream as far as the service has it, asking again if due. Never raises."""
        with self._cache.lock:
            state = self._cache.get((tuple(log_key), io_name))
            if due(state, self._read_interval):
                try:
                    self._refresh(log_key, io_name, state)
                    if state.has_holes() and state.token is not None:
                        # Both services may list an event some time after a later one: a
                        # hole may be such an event. List the stream again from its start
                        # (pieces already held are kept once).
                        state.token = None
                        self._refresh(log_key, io_name, state)
                    self._read_errors = 0
                except Exception as exc:
                    self._read_errors += 1
                    if self._read_errors == 1:
                        _log.warning("dagster-logship: reading %s failed: %s",
                                     self._location(log_key, io_name), exc)
                state.checked_at = time.monotonic()
            return state

    def get_log_data_for_type(
        self,
        log_key: Sequence[str],
        io_type: ComputeIOType,
        offset: int,
        max_bytes: int | None,
    ) -> tuple[bytes | None, int]:
        return self._state(log_key, io_type.value).read(offset or 0, max_bytes)

    def is_capture_complete(self, log_key: Sequence[str]) -> bool:
        if tuple(log_key) in self._completed:
            return True
        if self._state(log_key, "stderr").complete:
            return True
        return self._run_over_without_marker(log_key)

    def _run_over_without_marker(self, log_key: Sequence[str]) -> bool:
        facts = LogKeyFacts.of(log_key)
        if facts.run_id is None or not self.has_instance:
            return False
        try:
            record = self._instance.get_run_record_by_id(facts.run_id)
        except Exception:
            return False
        if record is None or not record.dagster_run.is_finished or record.end_time is None:
            return False
        return bool(time.time() - record.end_time > self._flush_timeout + _MARKER_GRACE_SECONDS)

    def get_log_metadata(self, log_key: Sequence[str]) -> CapturedLogMetadata:
        return CapturedLogMetadata(
            stdout_location=self._location(log_key, "stdout"),
            stderr_location=self._location(log_key, "stderr"),
            stdout_download_url=self._console_url(log_key, "stdout"),
            stderr_download_url=self._console_url(log_key, "stderr"),
        )

    def delete_logs(
        self, log_key: Sequence[str] | None = None, prefix: Sequence[str] | None = None
    ) -> None:
        if not log_key and not prefix:
            raise ValueError("delete_logs needs log_key or prefix")
        try:
            self._delete(log_key, prefix)
        except Exception as exc:
            _log.warning("dagster-logship: deleting compute logs failed: %s", exc)
        if log_key:
            key = tuple(log_key)
            self._cache.drop_where(lambda k: k[0] == key)
            self._completed.pop(key, None)
        if prefix:
            head = tuple(prefix)
            self._cache.drop_where(lambda k: k[0][: len(head)] == head)

    def get_log_keys_for_log_key_prefix(
        self, log_key_prefix: Sequence[str], io_type: ComputeIOType
    ) -> Sequence[list[str]]:
        try:
            return self._keys_under(log_key_prefix, io_type.value)
        except Exception as exc:
            _log.warning("dagster-logship: listing compute logs failed: %s", exc)
            return []

    def subscribe(
        self, log_key: Sequence[str], cursor: str | None = None
    ) -> CapturedLogSubscription:
        subscription = CapturedLogSubscription(self, log_key, cursor)
        self._subscriptions.add_subscription(subscription)
        return subscription

    def unsubscribe(self, subscription: CapturedLogSubscription) -> None:
        self._subscriptions.remove_subscription(subscription)

    def dispose(self) -> None:
        self._subscriptions.dispose()
        self._local.dispose()
