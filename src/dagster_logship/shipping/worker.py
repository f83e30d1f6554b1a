"""The batching worker: one bounded queue and two threads per destination per process.

The caller's thread only appends to the queue (:meth:`Worker.put`). The worker thread encodes
and forms batches the sink can send whole; the sender thread sends them, one request at a time
and in order, with retries, and disposes of every record as delivered, rejected (spilled) or
spilled. While one request is out the worker encodes the next take of records (about a batch),
and no further ahead.
Workers are shared through a registry keyed by destination, so building a logger again and
again reuses the threads and one client; a worker whose last handler is gone drains and stops.

Process lifecycle is handled here too: after ``fork`` the child gets fresh locks and an empty
queue (the parent ships what it had queued); at interpreter exit, and at the end of a
``multiprocessing`` child (which may skip ``atexit``), every worker gets ``flush_timeout`` to
deliver and spills the rest.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import multiprocessing.util
import os
import random
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from functools import partial
from queue import SimpleQueue
from typing import Any
from weakref import WeakSet

from .encoding import CREATED, MEM, SIZE, Snapshot, build_event, encode, fit_event
from .event_text import event_text
from .options import ShippingOptions
from .retry import BatchRejectedError, RetryableError, RetryPolicy, build_retrying
from .sink import (
    SEQ,
    TIMESTAMP,
    Item,
    ItemTuple,
    Sink,
    event_of,
    payload_hooks,
    takes_plain_items,
)
from .sink import SIZE as ITEM_SIZE
from .spill import Spill, diagnostic
from .stats import DeliveryStats

__all__ = [
    "Worker",
    "acquire",
    "current",
    "flush_all",
    "in_shipping_thread",
    "quiet_sdk_loggers",
    "release",
    "release_later",
    "shutdown_all",
]

_IDLE_TICK = 1.0
#: Records per second above which a logging process's worker leaves the GIL to the code that
#: logs until it pauses for _QUIET (or a batch is due, or the queue is half full): see
#: Worker._pace_locked.
_BURST_RATE = 20_000.0
_QUIET = 0.02
#: ``time.sleep(0)`` releases the GIL, and hands it to a thread waiting for it (see _items_of).
_yield_gil = partial(time.sleep, 0)
_monotonic = time.monotonic
#: ``_wake_at`` / ``_wake_mem`` while the worker is not waiting for records.
_NEVER = 1 << 62
#: The worker encodes queued records once this many are waiting (or a batch's bytes, or on
#: flush or age); see Worker._take.
_ENCODE_AT = 1024
#: At process exit a backoff lasts at most flush_timeout / this (see Worker._sleep).
_EXIT_ATTEMPTS = 6
#: Why what is still failing when a process exits is spilled.
_EXIT_REASON = "process exiting: flush_timeout passed"
#: How long a process exit waits for the worker to finish writing a batch's spill lines.
_DISPOSE_WAIT = 2.0
#: The pace between batches after throttling is at most this many initial backoffs (2 s with
#: the defaults): enough to spread dozens of processes over a quota, short enough that a
#: worker resumes its full rate within seconds once the quota is free (see _adjust_pace).
_PACE_CEILING = 10
class _ThreadFlags(threading.local):
    #: True on a thread that is sending for us. A class attribute, so that reading it on any
    #: other thread finds the default without raising (getattr with a default raised and caught
    #: AttributeError inside, a tenth of a log call's cost).
    active = False


_local = _ThreadFlags()


def in_shipping_thread() -> bool:
    """True on a thread that is sending for us: its log records must not come back to us."""
    return _local.active


#: Top-level names of the loggers of the libraries our sinks send through.
_SDK_LOGGERS = frozenset(
    {"botocore", "boto3", "urllib3", "s3transfer", "google", "requests", "grpc",
     "charset_normalizer"}
)


class _NotFromShippingThreads(logging.Filter):
    """Drops the records an SDK makes on our shipping threads, before any handler sees them."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not in_shipping_thread()


_sdk_filter = _NotFromShippingThreads()
_loggers_seen = 0


def quiet_sdk_loggers() -> None:
    """Keep the SDKs' own records about our requests out of every handler of the process.

    FIX (issue 6, found with Dagster capturing the root logger at DEBUG): ``emit`` already
    refused records made on our threads, but other handlers did not: Dagster stored urllib3's
    and botocore's DEBUG lines about each of our requests in the run's event log, and
    botocore's include the request headers, the session token among them. A filter on the
    SDK loggers themselves (logger filters apply where a record is made, before it
    propagates) drops exactly the records made on our shipping threads; records the
    application's own threads make through the same SDKs pass untouched. Called when a sink
    has built its client and after each request (SDKs create some loggers lazily); it only
    walks the logger registry when that has grown.
    """
    global _loggers_seen
    registry = logging.Logger.manager.loggerDict
    if len(registry) == _loggers_seen:
        return
    _loggers_seen = len(registry)
    for name, candidate in list(registry.items()):
        if (
            name.split(".", 1)[0] in _SDK_LOGGERS
            and isinstance(candidate, logging.Logger)
            and _sdk_filter not in candidate.filters
        ):
            candidate.addFilter(_sdk_filter)


class _Abandoned(Exception):
    """The process is exiting and the flush timeout has passed."""


class Worker:
    """Queue, thread, batching and retries for one destination."""

    def __init__(self, sink: Sink, options: ShippingOptions) -> None:
        self.sink = sink
        self.options = options
        limits = sink.limits
        self.batch_events = min(
            options.max_batch_size or limits.max_batch_events, limits.max_batch_events
        )
        self.batch_bytes = min(
            options.max_batch_bytes or limits.max_batch_bytes, limits.max_batch_bytes
        )
        self._encode_at = min(_ENCODE_AT, self.batch_events)
        #: Whether to build the event for the sink's payload(), and its plain_payload if that
        #: may be used (see sink.payload_hooks).
        self._needs_event, self._plain_payload = payload_hooks(sink)
        #: Whether send() gets the worker's tuples (see sink.takes_plain_items).
        self._plain_items = takes_plain_items(sink)
        self._busy_records = max(1, options.queue_max_records // 2)
        self._busy_mem = max(1, options.queue_max_bytes // 2)
        self._max_records = options.queue_max_records
        self._max_mem = options.queue_max_bytes
        self.spill = Spill(options.spill_path, sink.destination)
        self._policy = RetryPolicy(
            initial_backoff=options.retry_initial_backoff,
            max_backoff=options.retry_max_backoff,
            deadline=options.retry_deadline,
        )
        self._degraded_policy = RetryPolicy(
            initial_backoff=options.retry_initial_backoff,
            max_backoff=options.retry_max_backoff,
            deadline=0.0,
        )
        self._init_process_state()
        _live_workers.add(self)

    # -- state that must be rebuilt in a forked child -------------------------------------------

    def _init_process_state(self) -> None:
        self._pid = os.getpid()
        self.stats = DeliveryStats()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._room = threading.Condition(self._lock)
        self._progress = threading.Condition(self._lock)
        # Snapshots as ``emit`` made them: flat tuples that the garbage collector stops tracking
        # (see encoding.Snapshot). A record's sequence number is its place in the order of the
        # queue: ``_seq`` counts records enqueued, ``_popped`` those taken off its head (by the
        # worker or by overflow), so the head's number is ``_popped + 1`` and
        # ``_popped + len(_queue) == _seq``. ``_done_seq``: every record up to it is settled.
        self._queue: deque[Snapshot] = deque()
        self._queued_mem = 0
        self._seq = 0
        self._popped = 0
        self._done_seq = 0
        # When the queue last became non-empty: the oldest queued record's time, or (after a
        # partial take) earlier than it, which can only make the rest look older and be sent
        # sooner. Set by ``put`` when it finds the queue empty: one clock reading per burst.
        self._head_at = 0.0
        # A burst: records coming faster than _BURST_RATE; the worker waits for a pause (see
        # _pace_locked), then drains the queue. _seen_seq: what _seq was when it last looked.
        self._burst = False
        self._draining = False
        self._seen_seq = 0
        self._taken_at = 0.0  # _head_at of the records last taken
        # What makes ``put`` wake the waiting worker: this queue length or this much memory.
        self._wake_at = 1
        self._wake_mem = _NEVER
        self._flush_target = 0
        self._thread: threading.Thread | None = None
        self._waiting = False
        self._stopping = False
        self._abandon_at: float | None = None
        #: Why a batch still failing at ``_abandon_at`` is spilled (process exit, a run's end).
        self._abandon_reason = _EXIT_REASON
        self._interrupt = threading.Event()
        # What the worker holds besides the queue, all visible to abandon_now (under _lock):
        # snapshots popped and being encoded, a partial batch kept to fill, batches formed and
        # not yet started, the batch being sent. ``_epoch`` changes when abandon_now took them.
        self._taken: list[Snapshot] = []
        self._taken_first = 0  # sequence number of _taken[0]
        self._taken_estimate = 0  # their SIZE, summed
        self._size_ratio = 1.0  # encoded bytes / SIZE, lately (see _process)
        self._carry: list[ItemTuple] = []
        self._pending: deque[list[ItemTuple]] = deque()
        self._in_flight: list[ItemTuple] = []
        # The sender thread sends the batches the worker thread forms, one request at a time,
        # while the worker encodes the next ones (see _process and _send_loop).
        self._sender: threading.Thread | None = None
        self._send_ready = threading.Condition(self._lock)
        self._epoch = 0
        self._disposing = False  # the worker is spilling what its batch in flight left
        self._degraded = False
        self._pace = 0.0
        self._diagnosed: set[str] = set()
        self._unreported_drops = 0

    def stats_snapshot(self) -> dict[str, int]:
        """The delivery counters as a dict (``enqueued`` is the sequence counter: ``put`` keeps
        no second one)."""
        self.stats.enqueued = self._seq
        return self.stats.snapshot()

    def after_fork(self) -> None:
        """In a forked child: start empty with fresh locks; the parent ships what it queued."""
        self._init_process_state()
        self.spill.after_fork()
        with contextlib.suppress(Exception):
            self.sink.after_fork()

    # -- caller side ---------------------------------------------------------------------------

    def put(self, snap: Snapshot) -> None:
        """Enqueue one record. Called from ``emit``: no I/O, never raises into the caller.

        The hot path of every log call, hence terse: the snapshot is queued as it is (no
        sequence number or clock reading added), bounds are read from attributes set once, the
        worker is woken only at the thresholds it asked for (``_wake_at``, ``_wake_mem``), and
        there is no pid check (``os.register_at_fork`` resets a forked child)."""
        start_inline = False
        with self._lock:
            queue = self._queue
            mem = self._queued_mem + snap[MEM]
            if (mem > self._max_mem or len(queue) >= self._max_records) and queue:
                if not self._make_room_locked(snap):
                    return
                mem = self._queued_mem + snap[MEM]
            if not queue:
                self._head_at = _monotonic()
            queue.append(snap)
            self._queued_mem = mem
            self._seq += 1
            if len(queue) >= self._wake_at or mem >= self._wake_mem:
                self._wake_at = self._wake_mem = _NEVER
                self._wake.notify()
            if self._thread is None and not self._start_locked():
                start_inline = True
        if start_inline:
            self._drain_inline(time.monotonic() + self.options.flush_timeout)

    def _full_locked(self, snap: Snapshot) -> bool:
        return bool(self._queue) and (
            len(self._queue) >= self.options.queue_max_records
            or self._queued_mem + snap[MEM] > self.options.queue_max_bytes
        )

    def _make_room_locked(self, snap: Snapshot) -> bool:
        policy = self.options.overflow
        if policy == "drop_oldest":
            while self._full_locked(snap):
                old = self._queue.popleft()
                self._popped += 1
                self._queued_mem -= old[MEM]
                self.stats.dropped += 1
                self._unreported_drops += 1
            return True
        if policy == "block" and threading.current_thread() is not self._thread:
            deadline = time.monotonic() + self.options.block_timeout
            while self._full_locked(snap):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                if self._thread is None:
                    self._start_locked()
                self._wake.notify()
                self._room.wait(remaining)
            if not self._full_locked(snap):
                return True
        self.stats.dropped += 1
        self._unreported_drops += 1
        return False

    def _start_locked(self) -> bool:
        thread = threading.Thread(
            target=self._run, name=f"dagster-logship {self.sink.destination}", daemon=True
        )
        try:
            thread.start()
        except RuntimeError:  # interpreter shutting down: the caller drains inline
            return False
        self._thread = thread
        _ensure_exit_hooks()
        return True

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything enqueued so far is delivered or disposed of; False on timeout."""
        if timeout is None:
            timeout = self.options.flush_timeout
        deadline = time.monotonic() + timeout
        inline = False
        with self._lock:
            target = self._seq
            if self._done_seq >= target:
                return True
            self._flush_target = max(self._flush_target, target)
            if self._thread is None:
                inline = not self._start_locked()
            else:
                self._wake.notify()
        if inline:
            self._drain_inline(deadline)
        with self._lock:
            while self._done_seq < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                if self._thread is None and self._queue and not self._start_locked():
                    break
                self._progress.wait(remaining)
            return self._done_seq >= target

    def stop(self) -> None:
        """No handler uses this worker any more: drain what is queued, then end the thread."""
        release = False
        with self._lock:
            self._stopping = True
            self._wake.notify()
            self._send_ready.notify()
            if self._thread is None:
                if self._queue or self._carry:
                    release = not self._start_locked()
                else:  # or the sender, still sending, releases it when done
                    release = self._releasable_locked()
        if release:
            self._release_sink()

    def begin_exit(self, deadline: float, reason: str = "") -> int:
        """Process exit: deliver until ``deadline``, then spill (with ``reason``, else the exit's
        own). Returns the sequence to await."""
        with self._lock:
            self._abandon_at = deadline
            self._abandon_reason = reason or _EXIT_REASON
            target = self._seq
            self._flush_target = max(self._flush_target, target)
            if self._thread is None and (self._queue or self._carry):
                self._start_locked()
            self._wake.notify()
        self._interrupt.set()
        return target

    def wait_done(self, target: int, deadline: float) -> bool:
        with self._lock:
            while self._done_seq < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self._thread is None and self._queue):
                    return False
                self._progress.wait(remaining)
            return True

    def settle(self, timeout: float, reason: str) -> bool:
        """Deliver what is queued for at most ``timeout`` seconds, then spill what is left with
        ``reason``, as at process exit but with the process going on (a run's end: what it
        logged is then delivered or disposed of). True if everything was delivered."""
        deadline = time.monotonic() + timeout
        target = self.begin_exit(deadline, reason)
        try:
            if self.wait_done(target, deadline):
                return True
            self.abandon_now(reason)
            return False
        finally:
            with self._lock:
                self._abandon_at = None
                self._abandon_reason = _EXIT_REASON

    def abandon_now(self, reason: str) -> None:
        """Spill whatever is still queued or in the worker's hands, from the exiting thread.

        FIX (issue 6, found by the backend-down run: under load a step process lost a whole
        batch, neither delivered nor spilled): this used to see only the queue, the carried
        batch and the batch in flight. Records the worker had popped and was encoding, batches
        formed but not yet started, and a batch whose spill lines the worker was still writing
        (it stopped counting as in flight first) were invisible: the exiting thread found
        nothing, returned, and the process ended before the worker wrote them. Now everything
        the worker holds is visible here, a spill being written is waited for (at most
        ``_DISPOSE_WAIT``), and the worker learns from ``_epoch`` that what it held was taken.
        """
        with self._lock:
            # The worker is writing what its batch left to spill: let it finish (a moment),
            # rather than spill the batch twice or leave before it is written.
            end = time.monotonic() + _DISPOSE_WAIT
            while self._disposing and time.monotonic() < end:
                self._progress.wait(max(0.0, end - time.monotonic()))
            snaps = list(self._queue) + self._taken
            self._queue.clear()
            self._popped = self._seq
            self._queued_mem = 0
            items = self._carry + [item for batch in self._pending for item in batch]
            items += self._in_flight
            self._carry, self._taken, self._in_flight = [], [], []
            self._pending = deque()
            self._epoch += 1
            self._done_seq = self._seq
            self._progress.notify_all()
        events = [(event_of(item[0]), reason) for item in items]
        events += [(build_event(snap), reason) for snap in snaps]
        self._spill(events)

    # -- worker side ---------------------------------------------------------------------------

    def _run(self) -> None:
        _local.active = True
        me = threading.current_thread()
        try:
            while True:
                snaps, first, force, stop = self._take()
                if snaps or (force and self._carry):
                    self._process(snaps, first, force)
                elif stop:
                    break
                else:
                    _drain_releases()
        except BaseException as exc:  # pragma: no cover - a bug; make it visible, keep records
            diagnostic(f"worker for {self.sink.destination} failed: {exc!r}")
        finally:
            with self._lock:
                if self._thread is me:
                    self._thread = None
                # A put after _take said stop may have started a successor: it owns the sink;
                # a sender still sending releases it when it is done.
                stopping = self._releasable_locked()
                self._send_ready.notify()
                self._progress.notify_all()
            if stopping:
                self._release_sink()

    def _releasable_locked(self) -> bool:
        """No thread runs and nothing is held: the sink's client can be let go."""
        return (
            self._stopping
            and self._thread is None
            and self._sender is None
            and not self._queue
            and not self._taken
            and not self._carry
            and not self._pending
            and not self._in_flight
        )

    def _drain_inline(self, deadline: float) -> None:
        """Deliver from the calling thread (no worker thread could be started)."""
        was_active = in_shipping_thread()
        _local.active = True
        try:
            with self._lock:
                self._abandon_at = deadline if self._abandon_at is None else self._abandon_at
            while True:
                with self._lock:
                    if not self._queue and not self._carry:
                        self._mark_done_locked(None)
                        return
                    first = self._popped + 1
                    snaps = self._pop_batch_locked()
                self._process(snaps, first, True)
        finally:
            _local.active = was_active

    def _take(self) -> tuple[list[Snapshot], int, bool, bool]:
        """Wait until a batch is due; return (snapshots, the first one's sequence number,
        force-send, stop)."""
        interval = self.options.flush_interval
        with self._lock:
            while True:
                queue = self._queue
                urgent = (
                    self._flush_target > self._done_seq
                    or self._stopping
                    or self._abandon_at is not None
                )
                if not queue and not self._carry:
                    self._mark_done_locked(None)  # up to a batch the sender still has
                    if self._stopping:
                        # FIX (issue 6): the thread gives up its slot while still holding the
                        # lock. It used to do so later, in _run's ``finally``: a record put in
                        # between (another thread emitting through a handler that a host was
                        # closing, as dictConfig does on every Dagster run) saw a live thread,
                        # was queued, and stayed there with no thread to send it and no
                        # handler left to flush it. Now such a put starts a new thread.
                        if self._thread is threading.current_thread():
                            self._thread = None
                        return [], 0, False, True
                    self._report_drops_locked()
                    self._wait_locked(_IDLE_TICK, 1)
                    if not self._queue:
                        return [], 0, False, False
                    continue
                now = _monotonic()
                oldest = min(
                    self._head_at if queue else now,
                    self._carry_at if self._carry else now,
                )
                age = now - oldest
                due = urgent or age >= interval
                # Encode _ENCODE_AT records at a time, full batch or not (sending still waits
                # for a full batch or for flush_interval)...
                start = (
                    len(queue) >= min(self._encode_at, self._max_records)
                    or self._queued_mem >= min(self.batch_bytes, self._max_mem)
                )
                if queue:
                    start = self._pace_locked(start, now)
                if queue and (due or start):
                    first = self._popped + 1
                    return self._pop_batch_locked(), first, due, False
                if due:
                    return [], 0, True, False
                if self._burst:
                    self._seen_seq = self._seq
                    self._wait_locked(
                        min(_QUIET, interval - age), self._busy_records, self._busy_mem
                    )
                else:
                    self._wait_locked(
                        interval - age,
                        min(self._encode_at, self._max_records),
                        min(self.batch_bytes, self._max_mem),
                    )

    def _pace_locked(self, start: bool, now: float) -> bool:
        """...except in a burst. In the logging process the worker shares the GIL with the code
        that logs: when records come faster than _BURST_RATE (a tight loop), every record it
        encoded meanwhile cost that code its time, ~3 us each. Then it waits until they stop
        for _QUIET (and encodes all of them), or until the queue is half full (a batch at a
        time), or a batch is due. The work is the same, done when the code pauses (often in
        I/O or C code, which releases the GIL). Slower streams (a Dagster op's log calls are
        ~300 us apart) are encoded as they come: waking to look for a pause would cost more."""
        busy = len(self._queue) >= self._busy_records or self._queued_mem >= self._busy_mem
        if self._burst:
            if self._seq == self._seen_seq:  # a pause: encode everything queued
                self._burst = False
                self._draining = True
                return True
            return busy
        if self._draining:
            return True
        if start and len(self._queue) > _BURST_RATE * (now - self._head_at):
            self._burst = True
            self._seen_seq = self._seq
            return busy
        return start

    def _wait_locked(self, timeout: float, wake_at: int, wake_mem: int | None = None) -> None:
        """Wait (lock held) until ``timeout`` passes or ``put`` sees ``wake_at`` records queued
        or ``wake_mem`` bytes (a batch's worth); flush, stop and exit notify directly."""
        self._waiting = True
        self._wake_at = wake_at
        self._wake_mem = self.batch_bytes if wake_mem is None else wake_mem
        self._wake.wait(timeout)
        self._wake_at = self._wake_mem = _NEVER
        self._waiting = False

    _carry_at = 0.0
    _carry_bytes = 0
    _carry_lo = 0.0
    _carry_hi = 0.0

    def _pop_batch_locked(self) -> list[Snapshot]:
        out: list[Snapshot] = []
        nbytes = mem = 0
        queue = self._queue
        limit = self.batch_bytes / self._size_ratio
        while queue and len(out) < self.batch_events:
            size = queue[0][SIZE]
            if out and nbytes + size > limit:
                break
            entry = queue.popleft()
            out.append(entry)
            nbytes += size
            mem += entry[MEM]
        self._taken_first = self._popped + 1
        self._taken_at = self._head_at
        self._taken_estimate = nbytes
        self._popped += len(out)
        if not queue:
            self._draining = False
        self._queued_mem -= mem
        self._taken = out  # the worker's now; abandon_now can still see them
        if out:
            self._room.notify_all()
        return out

    def _items_of(self, snaps: Sequence[Snapshot], first: int) -> list[ItemTuple]:
        limits = self.sink.limits
        overhead = limits.per_event_overhead
        max_event = min(limits.max_event_bytes, self.batch_bytes - overhead)
        items: list[ItemTuple] = []
        append = items.append
        needs_event, plain_payload = self._needs_event, self._plain_payload
        split = 0
        for seq, snap in enumerate(snaps, first):
            if not seq & 31 and self._in_flight:
                _yield_gil()
            fast = event_text(snap)
            if fast is not None and fast[1] <= max_event:
                if not needs_event:
                    append((fast[0], fast[0], fast[1] + overhead, snap[CREATED], seq))
                    continue
                if plain_payload is not None:
                    try:
                        payload = plain_payload(snap, fast[0])
                    except Exception:
                        payload = None
                    if payload is not None:
                        append((fast[0], payload, fast[1] + overhead, snap[CREATED], seq))
                        continue
            event = build_event(snap)
            text, nbytes = fast if fast is not None else encode(event)
            parts = [(event, text, nbytes)]
            if nbytes > max_event:
                parts = fit_event(event, text, nbytes, max_event, self.options.oversize)
                split += len(parts) - 1
            for part_event, part_text, part_bytes in parts:
                try:
                    payload = self.sink.payload(part_event, part_text)
                except Exception:
                    payload = part_text
                append((part_text, payload, part_bytes + overhead, snap[CREATED], seq))
        if split:
            self.stats.add(parts_split=split)
        return items

    def _cut(
        self, carry: list[ItemTuple], items: list[ItemTuple]
    ) -> tuple[list[list[ItemTuple]], int, float, float]:
        """Cut ``carry`` (a partial batch kept from before) followed by ``items`` into batches
        the sink can send whole; the last one may be partial. Returns the batches and the last
        one's bytes and time span (``lo``, ``hi``), so a carried batch is never walked again."""
        span = self.sink.limits.max_span_seconds
        max_events, max_bytes = self.batch_events, self.batch_bytes
        batches: list[list[ItemTuple]] = []
        current = list(carry)
        nbytes, lo, hi = (self._carry_bytes, self._carry_lo, self._carry_hi) if carry else (0, 0, 0)
        for item in items:
            ts, size = item[TIMESTAMP], item[ITEM_SIZE]
            if current and (
                len(current) >= max_events
                or nbytes + size > max_bytes
                or (span is not None and (ts - lo > span or hi - ts > span))
            ):
                batches.append(current)
                current = []
            if not current:
                current = [item]
                nbytes, lo, hi = size, ts, ts
                continue
            current.append(item)
            nbytes += size
            if ts < lo:
                lo = ts
            elif ts > hi:
                hi = ts
        if current:
            batches.append(current)
        return batches, nbytes, lo, hi

    def _process(
        self, snaps: list[Snapshot], first: int, force: bool, epoch: int | None = None
    ) -> None:
        """Encode ``snaps``, add them to the partial batch in hand, send every full batch; send
        the last, partial one too when ``force`` says it is due, else keep it to fill.
        ``epoch``: the epoch in which ``snaps`` were taken, when not just now (an exiting
        process may have spilled them since)."""
        with self._lock:
            if epoch is not None and epoch != self._epoch:
                return
            epoch, carry, taken_at = self._epoch, self._carry, self._taken_at
            taken_estimate = self._taken_estimate
        items = self._items_of(snaps, first)
        if items and taken_estimate:
            # How much bigger events are than the snapshots' estimate (Dagster's tags, ids):
            # the next take is scaled by it, so that one take stays about one batch.
            ratio = sum([item[ITEM_SIZE] for item in items]) / taken_estimate
            self._size_ratio = max(1.0, (self._size_ratio + ratio) / 2)
        batches: list[list[ItemTuple]] = []
        nbytes, lo, hi = 0, 0.0, 0.0
        if carry or items:
            batches, nbytes, lo, hi = self._cut(carry, items)
        new_carry: list[ItemTuple] = []
        if batches:
            last = batches[-1]
            # Age of the last batch: the carried batch's, or (conservatively) the oldest
            # snapshot's of this round when a new batch was begun.
            if len(batches) == 1 and carry:
                oldest = self._carry_at
            else:
                oldest = taken_at if snaps else _monotonic()
            full = len(last) >= self.batch_events or nbytes >= self.batch_bytes * 0.95
            overdue = oldest + self.options.flush_interval <= _monotonic()
            more_waiting = bool(self._queue)  # a hint; read without the lock
            if not full and (more_waiting or (not overdue and not force)):
                # Fill it first: more is queued (the next take fills it at once: under a
                # backlog every record is overdue, and sending each take's tail alone made
                # requests ~70% full), or more is coming and it is not yet due. A tail held
                # back this way waits only while records keep arriving as it is encoded.
                new_carry = batches.pop()
                self._carry_at = oldest
                self._carry_bytes, self._carry_lo, self._carry_hi = nbytes, lo, hi
        with self._lock:
            if self._epoch != epoch:
                return  # abandoned meanwhile (process exit): abandon_now spilled all of it
            self._taken, self._carry = [], new_carry
            self._pending.extend(batches)
            if not self._pending:
                self._mark_done_locked(None)
                return
            handed = self._hand_over_locked()
        snaps.clear()  # encoded: the items hold them now (the caller's list, no longer needed)
        if not handed:  # no sender thread (interpreter shutting down): send from here
            self._send_pending(epoch)
            return
        # Double buffering: return to encode the next round once the sender has taken these
        # (one batch in flight, the next take being encoded), no further ahead: what waits stays in
        # the bounded queue. While a request is out this thread encodes, and a service that takes
        # its time to answer no longer stalls the encoding (benchmarks/: Cloud Logging).
        with self._lock:
            while self._pending and self._epoch == epoch and self._sender is not None:
                self._progress.wait(_IDLE_TICK)

    def _hand_over_locked(self) -> bool:
        """Wake the sender for the pending batches, starting it if needed; False if no thread
        can be started."""
        if self._sender is None:
            thread = threading.Thread(
                target=self._send_loop,
                name=f"dagster-logship send {self.sink.destination}",
                daemon=True,
            )
            try:
                thread.start()
            except RuntimeError:  # interpreter shutting down
                return False
            self._sender = thread
        self._send_ready.notify()
        return True

    def _send_pending(self, epoch: int) -> None:
        """Send the pending batches in order from this thread."""
        while True:
            with self._lock:
                if self._epoch != epoch or not self._pending:
                    return
                batch = self._in_flight = self._pending.popleft()
            self._deliver(batch, epoch)
            self._mark_done(None)

    def _send_loop(self) -> None:
        """The sender thread: one batch at a time, in order, while batches are handed over; it
        ends when nothing is pending and the worker thread has ended."""
        _local.active = True
        me = threading.current_thread()
        release = False
        try:
            while True:
                with self._lock:
                    while not self._pending:
                        if self._thread is None or self._sender is not me:
                            if self._sender is me:
                                self._sender = None
                            release = self._releasable_locked()
                            self._progress.notify_all()
                            return
                        self._send_ready.wait(_IDLE_TICK)
                    batch = self._in_flight = self._pending.popleft()
                    epoch = self._epoch
                    self._progress.notify_all()  # the worker may encode the next round
                self._deliver(batch, epoch)
                self._mark_done(None)
        except BaseException as exc:  # pragma: no cover - a bug; make it visible
            diagnostic(f"sender for {self.sink.destination} failed: {exc!r}")
        finally:
            with self._lock:
                if self._sender is me:
                    self._sender = None
                self._progress.notify_all()
            if release:
                self._release_sink()

    def _first_unsettled_locked(self) -> int:
        """The sequence number of the oldest record not yet delivered or disposed of: records
        move queue -> taken (being encoded) -> carry -> pending -> in flight, oldest first."""
        if self._in_flight:
            return self._in_flight[0][SEQ]
        if self._pending:
            return self._pending[0][0][SEQ]
        if self._carry:
            return self._carry[0][SEQ]
        if self._taken:
            return self._taken_first
        return self._popped + 1

    def _mark_done(self, upto: int | None) -> None:
        with self._lock:
            self._mark_done_locked(upto)

    def _mark_done_locked(self, upto: int | None) -> None:
        """Everything up to ``upto`` is settled (None: up to what the worker still holds)."""
        if upto is None:
            upto = self._first_unsettled_locked() - 1
        if upto > self._done_seq:
            self._done_seq = upto
            self._progress.notify_all()
        self._report_drops_locked()

    def _report_drops_locked(self) -> None:
        if self._unreported_drops:
            n, self._unreported_drops = self._unreported_drops, 0
            diagnostic(
                f"dropped {n} record(s) for {self.sink.destination}: queue full "
                f"(overflow={self.options.overflow}, queue_max_records="
                f"{self.options.queue_max_records}, queue_max_bytes={self.options.queue_max_bytes})"
            )

    def _should_give_up(self) -> bool:
        return self._abandon_at is not None and time.monotonic() >= self._abandon_at

    def _sleep(self, seconds: float) -> None:
        """Back off (interruptibly). While the process is exiting, no single wait is longer
        than a sixth of ``flush_timeout`` (5 s with the defaults): a process that exits in a
        throttling storm notices the storm's end within seconds instead of sleeping through
        the rest of its flush timeout on one 20 s backoff (issue 6)."""
        if self._abandon_at is not None:
            seconds = min(seconds, self.options.flush_timeout / _EXIT_ATTEMPTS)
        end = time.monotonic() + seconds
        while True:
            if self._abandon_at is not None:  # exit began during the wait
                end = min(end, time.monotonic() + self.options.flush_timeout / _EXIT_ATTEMPTS)
            limit = end if self._abandon_at is None else min(end, self._abandon_at)
            remaining = limit - time.monotonic()
            if remaining <= 0:
                return
            self._interrupt.wait(remaining)
            self._interrupt.clear()

    def _deliver(self, batch: list[ItemTuple], epoch: int) -> None:
        """Send one batch (already ``_in_flight``) with retries; dispose of every item."""
        # What the sink is handed: the tuples themselves, or Item objects for a sink that reads
        # their fields by name (made now, for the time of the call).
        remaining: Sequence[ItemTuple] = (
            batch if self._plain_items else [Item._make(item) for item in batch]
        )
        delivered = rejected = 0
        spills: list[tuple[dict[str, Any], str]] = []
        if self._pace > 0 and not self._degraded:
            self._sleep(random.uniform(self._pace / 2, self._pace))
        retries = 0

        def count_retry() -> None:
            nonlocal retries
            retries += 1
            self.stats.add(retried=1)

        def attempt() -> None:
            nonlocal remaining, delivered, rejected
            if self._should_give_up():
                raise _Abandoned
            quiet_sdk_loggers()  # loggers of SDKs imported since the last request
            try:
                result = self.sink.send(remaining)  # type: ignore[arg-type]  # see above
            finally:
                quiet_sdk_loggers()  # and of those the request imported
            self.stats.add(batches=1)
            retry_idx: Sequence[int] = ()
            if result is not None:
                for index, reason in result.rejected:
                    spills.append((event_of(remaining[index][0]), f"rejected by service: {reason}"))
                rejected += len(result.rejected)
                retry_idx = result.retry
            delivered += len(remaining) - len(result.rejected if result else ()) - len(retry_idx)
            if retry_idx:
                remaining = [remaining[i] for i in retry_idx]
                raise RetryableError(f"{len(retry_idx)} event(s) failed transiently")
            remaining = []

        policy = self._degraded_policy if self._degraded else self._policy
        retrying = build_retrying(
            policy,
            give_up=self._should_give_up,
            sleep=self._sleep,
            on_retry=count_retry,
        )
        try:
            retrying(attempt)
            self._degraded = False
            self._adjust_pace(retries)
        except RetryableError as exc:
            if self._should_give_up():
                reason = f"{self._abandon_reason} ({exc})"
            else:
                reason = f"retries exhausted ({exc})"
                self._degraded = True
                self._diagnose(
                    f"{self.sink.destination}: giving up on a batch after "
                    f"{self.options.retry_deadline:g}s of retries: {exc}; spilling it. "
                    "Until a send succeeds, failing batches are spilled without waiting."
                )
            spills += [(event_of(item[0]), reason) for item in remaining]
        except _Abandoned:
            spills += [(event_of(item[0]), self._abandon_reason) for item in remaining]
        except BatchRejectedError as exc:
            if exc.diagnostic:
                self._diagnose(f"{self.sink.destination}: {exc.diagnostic}")
            spills += [(event_of(item[0]), exc.reason) for item in remaining]
        except Exception as exc:
            self._diagnose(f"{self.sink.destination}: unexpected error while sending: {exc!r}")
            spills += [
                (event_of(item[0]), f"unexpected error: {type(exc).__name__}")
                for item in remaining
            ]
        with self._lock:
            stolen = self._epoch != epoch
            # FIX (issue 6): the batch stays in flight, visible to abandon_now, until what it
            # leaves to spill is written. Clearing it first left a window in which an exiting
            # process found nothing to spill, returned, and ended while this thread was still
            # encoding the spill lines: the whole batch was lost (seen under load).
            self._disposing = not stolen
        if stolen:  # the exiting thread already spilled this batch (if it was also delivered
            return  # just now, it is both: at-least-once)
        try:
            if delivered or rejected:
                self.stats.add(delivered=delivered, rejected=rejected)
            self._spill(spills)
        finally:
            with self._lock:
                self._disposing = False
                if self._epoch == epoch:
                    self._in_flight = []
                self._progress.notify_all()

    def _adjust_pace(self, retries: int) -> None:
        """Pace the next batches after a batch needed retries; relax as batches go through.

        FIX (issue 6, found by the quota test: 28 processes against an account-wide rate):
        backoff used to start afresh with every batch, so a worker that had just been throttled
        sent its next batch at once and was throttled again; together the processes offered
        about twice the quota. Now the first attempt of the next batch waits a jittered
        ``pace`` that doubles (from ``retry_initial_backoff`` up to ``retry_max_backoff``)
        after each batch that was retried, and halves after each batch that went through at
        once (additive-increase/multiplicative-decrease turned around: slow down fast, speed
        up gradually). A healthy destination has no pace, hence no added latency.
        """
        initial = self.options.retry_initial_backoff
        if retries:
            ceiling = min(self.options.retry_max_backoff, _PACE_CEILING * initial)
            self._pace = min(ceiling, max(initial, self._pace * 2))
        elif self._pace:
            self._pace = self._pace / 2 if self._pace / 2 >= initial / 2 else 0.0

    def _spill(self, events: list[tuple[dict[str, Any], str]]) -> None:
        if events:
            self.stats.add(spilled=self.spill.write(events))

    def _diagnose(self, line: str) -> None:
        if line not in self._diagnosed:
            self._diagnosed.add(line)
            diagnostic(line)

    def _release_sink(self) -> None:
        with contextlib.suppress(Exception):
            self.sink.close()


# -- registry: one worker per destination per process ---------------------------------------------


@dataclass
class _Entry:
    worker: Worker
    refs: int


_registry_lock = threading.Lock()
_registry: dict[Hashable, _Entry] = {}
_released: SimpleQueue[tuple[Hashable, Worker]] = SimpleQueue()
_live_workers: WeakSet[Worker] = WeakSet()


def acquire(key: Hashable, factory: Callable[[], Worker]) -> Worker:
    """The worker for ``key`` in this process, made by ``factory`` if there is none."""
    _drain_releases()
    with _registry_lock:
        entry = _registry.get(key)
        if entry is None:
            entry = _registry[key] = _Entry(factory(), 0)
        entry.refs += 1
        return entry.worker


def current(key: Hashable) -> Worker | None:
    """The worker other handlers of ``key`` use in this process now, if any."""
    with _registry_lock:
        entry = _registry.get(key)
        return entry.worker if entry is not None else None


def release(key: Hashable, worker: Worker) -> None:
    """One handler is done with ``worker``; the last one stops it (after it drains)."""
    with _registry_lock:
        entry = _registry.get(key)
        if entry is None or entry.worker is not worker:
            return
        entry.refs -= 1
        if entry.refs > 0:
            return
        del _registry[key]
    worker.stop()


def release_later(key: Hashable, worker: Worker) -> None:
    """Release from a garbage-collection callback: no locks here, done at the next safe point."""
    _released.put((key, worker))


def _drain_releases() -> None:
    while True:
        try:
            key, worker = _released.get_nowait()
        except Exception:
            return
        release(key, worker)


def flush_all(timeout: float = 30.0) -> bool:
    """Flush every destination of this process; False if any did not finish within ``timeout``.

    For tests and for hosts that want delivery at a point of their choosing (Dagster runs that
    execute in the calling process never close their loggers).
    """
    deadline = time.monotonic() + timeout
    ok = True
    for worker in registered_workers():
        ok = worker.flush(max(0.0, deadline - time.monotonic())) and ok
    return ok


def registered_workers() -> list[Worker]:
    """Workers alive in this process (for tests and diagnostics)."""
    _drain_releases()
    return [w for w in list(_live_workers) if w._pid == os.getpid()]


# -- process lifecycle ----------------------------------------------------------------------------

_hooks_pid: int | None = None


def shutdown_all() -> None:
    """Give every worker its ``flush_timeout`` to deliver, then spill what is left.

    Runs at interpreter exit and when a ``multiprocessing`` child finishes. Never waits longer
    than the largest ``flush_timeout`` of the workers alive.
    """
    pid = os.getpid()
    workers = [w for w in list(_live_workers) if w._pid == pid]
    now = time.monotonic()
    waits = []
    for worker in workers:
        deadline = now + worker.options.flush_timeout
        try:
            waits.append((worker, worker.begin_exit(deadline), deadline))
        except Exception:
            continue
    for worker, target, deadline in waits:
        try:
            if not worker.wait_done(target, deadline):
                worker.abandon_now(
                    f"process exiting: not delivered within flush_timeout "
                    f"({worker.options.flush_timeout:g}s)"
                )
        except Exception:
            continue
    for worker in workers:  # a worker may be reused by a later handler in this process
        with worker._lock:
            worker._abandon_at = None


def _ensure_exit_hooks() -> None:
    """Register exit hooks in this process (a forked child starts with no Finalize registry)."""
    global _hooks_pid
    pid = os.getpid()
    if _hooks_pid == pid:
        return
    _hooks_pid = pid
    atexit.register(shutdown_all)
    # multiprocessing children started by fork or forkserver end with os._exit() after running
    # these finalizers, skipping atexit. (Imported at module level: an import in a forked child
    # can hang on a module lock that another thread of the parent held at fork time.)
    multiprocessing.util.Finalize(None, shutdown_all, exitpriority=100)
    _install_sigterm_hook()


_terminating = False


def _install_sigterm_hook() -> None:
    """Flush on SIGTERM, then die of it, in processes that left SIGTERM at its default.

    FIX (issue 6): with the default disposition the kernel ends the process at once and no exit
    hook runs, so a plain ``kill``, ``Process.terminate()``, ``Pool.terminate()`` or a container
    stop lost whatever was queued. The handler gives every destination its ``flush_timeout``
    (from a helper thread, so a worker lock held by the interrupted main thread is released
    meanwhile), then restores the default and sends itself SIGTERM again: the process still
    dies of SIGTERM (exit status -15), only later. A second SIGTERM ends it at once.

    Installed only from the main thread, and only over ``SIG_DFL``: a handler someone else
    installed (Dagster maps SIGTERM to its interrupt handling in the run worker and in step
    processes, where the step then unwinds and the ordinary exit hooks run) is never replaced.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    try:
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError, AttributeError):  # no signals here (embedded interpreters)
        pass


def _on_sigterm(signum: int, frame: Any) -> None:
    global _terminating
    if not _terminating:
        _terminating = True
        pid = os.getpid()
        longest = max(
            (w.options.flush_timeout for w in list(_live_workers) if w._pid == pid), default=0.0
        )
        helper = threading.Thread(
            target=shutdown_all, name="dagster-logship SIGTERM flush", daemon=True
        )
        helper.start()
        helper.join(longest + 1.0)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _after_fork_in_child() -> None:
    global _hooks_pid
    global _registry_lock
    global _terminating
    for worker in list(_live_workers):
        worker.after_fork()
    _registry_lock = threading.Lock()
    _hooks_pid = None
    # A SIGTERM handler installed by the parent stays: the child flushes its own records.
    _terminating = False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
