"""The bounded queue between the code that logs and the worker: snapshots in order, numbered.

``put`` is every log call's path, so it only appends: no I/O, no clock reading but one per
burst, no second tuple. A record's sequence number is its place in the queue's order: ``seq``
counts records enqueued and ``popped`` those taken off the head (by the worker or by overflow),
so the head's number is ``popped + 1``. Bounded by ``queue_max_records`` and
``queue_max_bytes``; when full, the ``overflow`` policy decides (``drop_newest``,
``drop_oldest``, or ``block`` up to ``block_timeout``), and every drop is counted and reported.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from .options import ShippingOptions
from .snapshots import MEM, SIZE, Snapshot

__all__ = ["NEVER", "RecordQueue"]

#: ``wake_at`` / ``wake_mem`` while the worker is not waiting for records.
NEVER = 1 << 62
_monotonic = time.monotonic


class RecordQueue:
    """FIFO of snapshots with sequence numbers, overflow policies and wake-up thresholds.

    ``lock`` is the worker's lock too: everything the worker holds changes under it, so that a
    flush or a process exit sees one consistent picture. The consumer (the worker) sets
    ``consumer`` to its thread, and ``start_consumer`` / ``drain_inline`` to what ``put`` calls
    when no thread consumes the queue.
    """

    def __init__(self, options: ShippingOptions) -> None:
        self.lock = threading.Lock()
        #: The worker waits here for records; ``put`` notifies at the thresholds it set.
        self.wake = threading.Condition(self.lock)
        #: ``block`` callers wait here for room.
        self.room = threading.Condition(self.lock)
        self.max_records = options.queue_max_records
        self.max_mem = options.queue_max_bytes
        self.overflow = options.overflow
        self.block_timeout = options.block_timeout
        self.items: deque[Snapshot] = deque()
        self.mem = 0
        self.seq = 0
        self.popped = 0
        self.dropped = 0
        self.unreported_drops = 0
        #: When the queue last became non-empty: the age of its head, or older (after a partial
        #: take), which can only make the rest be sent sooner.
        self.head_at = 0.0
        #: ``put`` wakes the waiting worker at this many records or this much memory.
        self.wake_at = 1
        self.wake_mem = NEVER
        self.consumer: threading.Thread | None = None
        self.start_consumer: Callable[[], bool] = lambda: False
        self.drain_inline: Callable[[], None] = lambda: None

    def __len__(self) -> int:
        return len(self.items)

    def put(self, snap: Snapshot) -> None:
        """Enqueue one record; never raises into the caller, never waits (but ``block``)."""
        start_inline = False
        with self.lock:
            items = self.items
            mem = self.mem + snap[MEM]
            if (mem > self.max_mem or len(items) >= self.max_records) and items:
                if not self._make_room_locked(snap):
                    return
                mem = self.mem + snap[MEM]
            if not items:
                self.head_at = _monotonic()
            items.append(snap)
            self.mem = mem
            self.seq += 1
            if len(items) >= self.wake_at or mem >= self.wake_mem:
                self.wake_at = self.wake_mem = NEVER
                self.wake.notify()
            if self.consumer is None and not self.start_consumer():
                start_inline = True
        if start_inline:  # no thread can be started (interpreter shutting down)
            self.drain_inline()

    def _full_locked(self, snap: Snapshot) -> bool:
        return bool(self.items) and (
            len(self.items) >= self.max_records or self.mem + snap[MEM] > self.max_mem
        )

    def _make_room_locked(self, snap: Snapshot) -> bool:
        """Apply the overflow policy; True if ``snap`` may be appended now."""
        if self.overflow == "drop_oldest":
            while self._full_locked(snap):
                old = self.items.popleft()
                self.popped += 1
                self.mem -= old[MEM]
                self._count_drop()
            return True
        if self.overflow == "block" and threading.current_thread() is not self.consumer:
            deadline = time.monotonic() + self.block_timeout
            while self._full_locked(snap):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                if self.consumer is None:
                    self.start_consumer()
                self.wake.notify()
                self.room.wait(remaining)
            if not self._full_locked(snap):
                return True
        self._count_drop()
        return False

    def _count_drop(self) -> None:
        self.dropped += 1
        self.unreported_drops += 1

    def take_locked(self, max_events: int, max_size: float) -> tuple[list[Snapshot], int, int]:
        """Pop up to ``max_events`` snapshots whose estimated sizes sum to at most ``max_size``
        (at least one); returns them, the first one's sequence number and their sizes' sum."""
        out: list[Snapshot] = []
        nbytes = mem = 0
        items = self.items
        while items and len(out) < max_events:
            size = items[0][SIZE]
            if out and nbytes + size > max_size:
                break
            entry = items.popleft()
            out.append(entry)
            nbytes += size
            mem += entry[MEM]
        first = self.popped + 1
        self.popped += len(out)
        self.mem -= mem
        if out:
            self.room.notify_all()
        return out, first, nbytes

    def take_all_locked(self) -> list[Snapshot]:
        """Everything queued, at once (a process exit spills it)."""
        out = list(self.items)
        self.items.clear()
        self.popped = self.seq
        self.mem = 0
        self.room.notify_all()
        return out

    def wait_locked(self, timeout: float, wake_at: int, wake_mem: int) -> None:
        """Wait (lock held) until ``timeout`` passes or ``put`` sees ``wake_at`` records or
        ``wake_mem`` bytes queued; flush, stop and exit notify ``wake`` directly."""
        self.wake_at, self.wake_mem = wake_at, wake_mem
        self.wake.wait(timeout)
        self.wake_at = self.wake_mem = NEVER

    def take_drop_report_locked(self) -> int:
        """Drops not yet reported (and now counted as reported)."""
        n, self.unreported_drops = self.unreported_drops, 0
        return n
