"""The worker thread of a destination: waits until records are due, encodes a take of them,
cuts it into batches and hands full ones to the sender thread.

A take is about one batch: ``_ENCODE_AT`` records or a batch's bytes, or whatever is queued once
it is due (``flush_interval``, a flush, a deadline); the size estimate is corrected by how much
larger events came out than their snapshots. A partial last batch is kept to fill while more
is queued or it is not yet due, so that under a backlog requests go out full.
"""

from __future__ import annotations

import threading
import time
from functools import partial
from typing import TYPE_CHECKING

from .batching import Batch, cut, encode_items
from .burst import BurstGate
from .lifecycle import drain_releases, ensure_exit_hooks
from .recursion import shipping_thread
from .sink import SIZE
from .snapshots import Snapshot
from .spill import diagnostic

if TYPE_CHECKING:
    from .worker import Worker

__all__ = ["Batcher"]

_IDLE_TICK = 1.0
#: The worker encodes queued records once this many are waiting (or a batch's bytes), or when
#: they are due; sending still waits for a full batch or for ``flush_interval``.
_ENCODE_AT = 1024
#: ``time.sleep(0)`` releases the GIL and hands it to a thread waiting for it.
_yield_gil = partial(time.sleep, 0)
_monotonic = time.monotonic


class Batcher:
    """The worker thread's side of a :class:`~.worker.Worker` (whose lock and state it uses)."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.sink, self.options, self.stats = worker.sink, worker.options, worker.stats
        self.queue, self.in_hand, self.lock = worker.queue, worker.in_hand, worker.lock
        self.progress, self.deadline, self.sender = worker.progress, worker.deadline, worker.sender
        self.batch_events, self.batch_bytes = worker.batch_events, worker.batch_bytes
        self.max_event = worker.max_event
        self._encode_at = min(_ENCODE_AT, self.batch_events)
        self._burst = BurstGate(self.queue)
        self._size_ratio = 1.0  # encoded bytes / estimated size, lately (see _process)
        self._taken_estimate = 0

    def start_locked(self) -> bool:
        thread = threading.Thread(
            target=self._run, name=f"dagster-logship {self.sink.destination}", daemon=True
        )
        try:
            thread.start()
        except RuntimeError:  # interpreter shutting down: the caller drains inline
            return False
        self.queue.consumer = thread
        ensure_exit_hooks()
        return True

    def _run(self) -> None:
        shipping_thread(True)
        me = threading.current_thread()
        try:
            while True:
                snaps, first, force, stop = self._take()
                if snaps or (force and self.in_hand.carry is not None):
                    self._process(snaps, first, force)
                elif stop:
                    break
                else:
                    drain_releases()
        except BaseException as exc:  # pragma: no cover - a bug; make it visible, keep records
            diagnostic(f"worker for {self.sink.destination} failed: {exc!r}")
        finally:
            with self.lock:
                if self.queue.consumer is me:
                    self.queue.consumer = None
                # A put after _take said stop may have started a successor: it owns the sink;
                # a sender still sending releases it when it is done.
                release = self.worker.releasable_locked()
                self.sender.wake_locked()
                self.progress.notify_all()
            if release:
                self.worker.release_sink()

    def drain_inline(self, deadline: float) -> None:
        """Deliver from the calling thread (no worker thread could be started)."""
        was_shipping = shipping_thread(True)
        try:
            with self.lock:
                if self.deadline.at is None:
                    self.deadline.set(deadline)
            while True:
                with self.lock:
                    if not self.queue.items and self.in_hand.carry is None:
                        self.worker.mark_done_locked()
                        return
                    snaps, first = self._take_locked()
                self._process(snaps, first, True)
        finally:
            shipping_thread(was_shipping)

    def _take(self) -> tuple[list[Snapshot], int, bool, bool]:
        """Wait until records are due; return (snapshots, the first one's sequence number,
        send the last partial batch too, stop)."""
        interval = self.options.flush_interval
        queue, hand, burst = self.queue, self.in_hand, self._burst
        encode_at = min(self._encode_at, queue.max_records)
        encode_mem = min(self.batch_bytes, queue.max_mem)
        with self.lock:
            while True:
                if not queue.items and hand.carry is None:
                    self.worker.mark_done_locked()  # up to a batch the sender still has
                    if self.worker.stopping:
                        # Give up the slot under the lock: a put from now on starts a thread.
                        if queue.consumer is threading.current_thread():
                            queue.consumer = None
                        return [], 0, False, True
                    queue.wait_locked(_IDLE_TICK, 1, self.batch_bytes)
                    if not queue.items:
                        return [], 0, False, False
                    continue
                now = _monotonic()
                oldest = min(
                    queue.head_at if queue.items else now,
                    hand.carry_at if hand.carry is not None else now,
                )
                age = now - oldest
                due = (
                    age >= interval
                    or self.worker.flush_target > self.worker.done_seq
                    or self.worker.stopping
                    or self.deadline.at is not None
                )
                start = len(queue.items) >= encode_at or queue.mem >= encode_mem
                if queue.items:
                    start = burst.encode_now(start, now)
                    if due or start:
                        snaps, first = self._take_locked()
                        return snaps, first, due, False
                if due:
                    return [], 0, True, False
                if burst.in_burst:
                    burst.before_wait()
                    queue.wait_locked(
                        min(burst.quiet, interval - age), burst.busy_records, burst.busy_mem
                    )
                else:
                    queue.wait_locked(interval - age, encode_at, encode_mem)

    def _take_locked(self) -> tuple[list[Snapshot], int]:
        """Take about one batch's worth off the queue into the worker's hands."""
        hand = self.in_hand
        hand.taken_at = self.queue.head_at
        snaps, first, self._taken_estimate = self.queue.take_locked(
            self.batch_events, self.batch_bytes / self._size_ratio
        )
        hand.taken, hand.taken_first = snaps, first
        self._burst.after_take()
        return snaps, first

    def _let_sender_run(self) -> None:
        if self.in_hand.in_flight is not None:
            _yield_gil()

    def _process(self, snaps: list[Snapshot], first: int, force: bool) -> None:
        """Encode ``snaps``, add them to the partial batch in hand, hand over every full batch;
        the last, partial one too when ``force`` says it is due, else keep it to fill."""
        hand = self.in_hand
        with self.lock:
            epoch, carry, taken_at = hand.epoch, hand.carry, hand.taken_at
            estimate, carry_at = self._taken_estimate, hand.carry_at
        items, split = encode_items(
            self.sink, snaps, first, self.max_event, self.options.oversize, self._let_sender_run
        )
        if split:
            self.stats.add(parts_split=split)
        if items and estimate:
            # How much bigger events are than the snapshots' estimate (Dagster's tags, ids): the
            # next take is scaled by it, so that one take stays about one batch.
            ratio = sum([item[SIZE] for item in items]) / estimate
            self._size_ratio = max(1.0, (self._size_ratio + ratio) / 2)
        batches: list[Batch] = []
        if carry is not None or items:
            batches = cut(
                carry, items, self.batch_events, self.batch_bytes,
                self.sink.limits.max_span_seconds,
            )  # fmt: skip
        new_carry: Batch | None = None
        if batches:
            last = batches[-1]
            # Age of the last batch: the carried one's, or the oldest taken record's.
            if len(batches) == 1 and carry is not None:
                oldest = carry_at
            else:
                oldest = taken_at if snaps else _monotonic()
            full = len(last) >= self.batch_events or last.nbytes >= self.batch_bytes * 0.95
            overdue = oldest + self.options.flush_interval <= _monotonic()
            # Keep a partial tail to fill while more is queued (under a backlog every record is
            # overdue, and sending each take's tail alone left requests ~70% full), or while it
            # is not yet due and nothing asks for it.
            if not full and (bool(self.queue.items) or (not overdue and not force)):
                new_carry, carry_at = batches.pop(), oldest
        with self.lock:
            if hand.epoch != epoch:
                return  # a process exit spilled all of it meanwhile
            hand.taken, hand.carry, hand.carry_at = [], new_carry, carry_at
            hand.pending.extend(batches)
            if not hand.pending:
                self.worker.mark_done_locked()
                return
            handed = self.sender.hand_over_locked()
        snaps.clear()  # the items hold them now
        if not handed:  # no sender thread (interpreter shutting down): send from here
            self.sender.send_pending(epoch)
            return
        # One batch in flight and the next take being encoded, no further ahead.
        with self.lock:
            while hand.pending and hand.epoch == epoch and self.sender.thread is not None:
                self.progress.wait(_IDLE_TICK)
