"""The worker: per destination and process, a queue and two threads that turn records into
requests, and the waiting for them to be settled.

``put`` appends to the bounded :class:`.record_queue.RecordQueue`. The worker thread
(:class:`.batcher.Batcher`) encodes takes of records and cuts them into batches; the sender
thread (:class:`.sender.Sender`) delivers them one request at a time, in order
(:class:`.delivery.Delivery`). ``flush``, ``settle`` and a process exit (:mod:`.lifecycle`)
wait until the records enqueued so far are settled: delivered, rejected or spilled. Past a
deadline, ``abandon_now`` spills everything still held, from the waiting thread.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from .batcher import Batcher
from .deadline import Deadline
from .delivery import Delivery
from .encoding import build_event
from .in_hand import InHand
from .lifecycle import track
from .options import ShippingOptions
from .record_queue import RecordQueue
from .sender import Sender
from .sink import TEXT, Sink, event_of
from .snapshots import Snapshot
from .spill import Spill, diagnostic
from .stats import DeliveryStats

__all__ = ["Worker"]

#: How long ``abandon_now`` waits for the sender to finish writing a batch's spill lines.
_DISPOSE_WAIT = 2.0
_monotonic = time.monotonic


class Worker:
    """Queue, threads, batching and delivery for one destination in one process."""

    #: Enqueue one snapshot: the queue's own ``put`` (every log call's path, so no wrapper).
    put: Callable[[Snapshot], None]

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
        self.max_event = min(limits.max_event_bytes, self.batch_bytes - limits.per_event_overhead)
        self.spill = Spill(options.spill_path, sink.destination)
        self._init_process_state()
        track(self)

    def _init_process_state(self) -> None:
        """Everything a forked child must not share with its parent."""
        self.pid = os.getpid()
        self.stats = DeliveryStats()
        self.queue = queue = RecordQueue(self.options)
        self.put = queue.put
        self.lock = queue.lock
        self.progress = threading.Condition(self.lock)  # something settled or handed over
        self.in_hand = InHand()
        self.delivery = Delivery(self.sink, self.options, self.stats)
        self.deadline = Deadline(self.options.flush_timeout)
        #: Every record up to this sequence number is settled.
        self.done_seq = 0
        self.flush_target = 0
        self.stopping = False
        self.sender = Sender(self)
        self.batcher = Batcher(self)
        queue.start_consumer = self.batcher.start_locked
        queue.drain_inline = self._drain_now

    def _drain_now(self) -> None:
        self.batcher.drain_inline(_monotonic() + self.options.flush_timeout)

    def stats_snapshot(self) -> dict[str, int]:
        """The delivery counters as a dict."""
        self.stats.enqueued = self.queue.seq
        self.stats.dropped = self.queue.dropped
        return self.stats.snapshot()

    def holding(self) -> dict[str, Any]:
        """How many records are where, now: queued (and their counted bytes), taken to encode,
        carried in a partial batch, in the pending batches, in flight. For diagnostics and
        tests."""
        with self.lock:
            hand = self.in_hand
            return {
                "queued": len(self.queue.items),
                "queued_bytes": self.queue.mem,
                "taken": len(hand.taken),
                "carry": len(hand.carry) if hand.carry is not None else 0,
                "pending": [len(batch) for batch in hand.pending],
                "in_flight": len(hand.in_flight) if hand.in_flight is not None else 0,
            }

    def after_fork(self) -> None:
        """In a forked child: start empty with fresh locks; the parent ships what it queued."""
        self._init_process_state()
        self.spill.after_fork()
        with contextlib.suppress(Exception):
            self.sink.after_fork()

    # -- what other threads call -----------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything enqueued so far is settled; False on timeout."""
        deadline = _monotonic() + (self.options.flush_timeout if timeout is None else timeout)
        queue = self.queue
        inline = False
        with self.lock:
            target = queue.seq
            if self.done_seq >= target:
                return True
            self.flush_target = max(self.flush_target, target)
            if queue.consumer is None:
                inline = not self.batcher.start_locked()
            else:
                queue.wake.notify()
        if inline:
            self.batcher.drain_inline(deadline)
        with self.lock:
            while self.done_seq < target:
                remaining = deadline - _monotonic()
                if remaining <= 0:
                    return False
                if queue.consumer is None and queue.items and not self.batcher.start_locked():
                    break
                self.progress.wait(remaining)
            return self.done_seq >= target

    def stop(self) -> None:
        """No handler uses this worker any more: deliver what is queued, then end the threads."""
        release = False
        with self.lock:
            self.stopping = True
            self.queue.wake.notify()
            self.sender.wake_locked()
            if self.queue.consumer is None:
                if self.queue.items or self.in_hand.carry is not None:
                    release = not self.batcher.start_locked()
                else:  # or the sender, still sending, releases it when done
                    release = self.releasable_locked()
        if release:
            self.release_sink()

    def begin_exit(self, deadline: float, reason: str = "") -> int:
        """Deliver until ``deadline``, then spill (with ``reason``, else the process exit's).
        Returns the sequence number to wait for (:meth:`wait_done`)."""
        with self.lock:
            self.deadline.set(deadline, reason)
            target = self.queue.seq
            self.flush_target = max(self.flush_target, target)
            if self.queue.consumer is None and (self.queue.items or self.in_hand.carry is not None):
                self.batcher.start_locked()
            self.queue.wake.notify()
        return target

    def end_exit(self) -> None:
        """The deadline is over: the worker may be used again (a later run, handler)."""
        with self.lock:
            self.deadline.clear()

    def wait_done(self, target: int, deadline: float) -> bool:
        with self.lock:
            while self.done_seq < target:
                remaining = deadline - _monotonic()
                if remaining <= 0 or (self.queue.consumer is None and self.queue.items):
                    return False
                self.progress.wait(remaining)
            return True

    def settle(self, timeout: float, reason: str) -> bool:
        """Deliver what is queued for at most ``timeout`` seconds, then spill what is left with
        ``reason``, as at a process exit but with the process going on (a run's end). True if
        everything was delivered."""
        deadline = _monotonic() + timeout
        target = self.begin_exit(deadline, reason)
        try:
            if self.wait_done(target, deadline):
                return True
            self.abandon_now(reason)
            return False
        finally:
            self.end_exit()

    def abandon_now(self, reason: str) -> None:
        """Spill everything queued or held, from the calling thread (the process is exiting).

        A spill the sender is writing is waited for (briefly), so a batch is neither spilled
        twice nor left unwritten; the worker threads learn from the epoch that what they held
        was taken."""
        with self.lock:
            end = _monotonic() + _DISPOSE_WAIT
            while self.in_hand.disposing and _monotonic() < end:
                self.progress.wait(max(0.0, end - _monotonic()))
            taken, items = self.in_hand.take_all()
            snaps = taken + self.queue.take_all_locked()
            self.done_seq = self.queue.seq
            self.progress.notify_all()
        events = [(event_of(item[TEXT]), reason) for item in items]
        events += [(build_event(snap), reason) for snap in snaps]
        self.spill_events(events)
        self.spill.report()

    # -- the worker thread -----------------------------------------------------------------------

    def releasable_locked(self) -> bool:
        """No thread runs and nothing is held: the sink's client can be let go."""
        return (
            self.stopping
            and self.queue.consumer is None
            and self.sender.thread is None
            and not self.queue.items
            and self.in_hand.holds_nothing()
        )

    # -- settling --------------------------------------------------------------------------------

    def mark_done(self) -> None:
        with self.lock:
            self.mark_done_locked()

    def mark_done_locked(self) -> None:
        """Records up to the oldest one still held are settled; report drops and spills once
        everything enqueued so far is (the end of a flush, or the queue ran empty)."""
        upto = self.in_hand.first_unsettled(self.queue.popped + 1) - 1
        if upto > self.done_seq:
            self.done_seq = upto
            self.progress.notify_all()
        drops = self.queue.take_drop_report_locked()
        if drops:
            options = self.options
            diagnostic(
                f"dropped {drops} record(s) for {self.sink.destination}: queue full "
                f"(overflow={options.overflow}, queue_max_records={options.queue_max_records}, "
                f"queue_max_bytes={options.queue_max_bytes})"
            )
        if self.done_seq >= self.queue.seq:
            self.spill.report()

    def spill_events(self, events: list[tuple[dict[str, Any], str]]) -> None:
        if events:
            self.stats.add(spilled=self.spill.write(events))

    def release_sink(self) -> None:
        with contextlib.suppress(Exception):
            self.sink.close()
