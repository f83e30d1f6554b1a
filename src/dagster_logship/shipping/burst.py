"""Leave the GIL to code that logs in a tight loop; encode when it pauses.

In the logging process the worker shares the GIL with the code that logs: while records come
faster than ``BURST_RATE`` (a tight loop), every record the worker encodes costs that code its
time, ~3 us each. Then the worker waits until records stop for ``QUIET`` (and encodes all of
them), or until the queue is half full (a batch at a time), or a batch is due. The work is the
same, done while the code pauses (often in I/O or C code, which releases the GIL). Slower
streams (a Dagster op's log calls are ~300 us apart) are encoded as they come.
"""

from __future__ import annotations

from .record_queue import RecordQueue

__all__ = ["BURST_RATE", "QUIET", "BurstGate"]

#: Records per second above which the code that logs counts as a tight loop.
BURST_RATE = 20_000.0
#: A pause this long in a burst lets the worker encode what the loop logged.
QUIET = 0.02


class BurstGate:
    """Decides, under the worker's lock, whether the worker should encode now."""

    #: How long a pause in a burst must last (see ``QUIET``).
    quiet = QUIET

    def __init__(self, queue: RecordQueue) -> None:
        self.queue = queue
        #: The queue is half full: encode a batch even in a burst.
        self.busy_records = max(1, queue.max_records // 2)
        self.busy_mem = max(1, queue.max_mem // 2)
        self.in_burst = False
        self._draining = False
        self._seen_seq = 0

    def encode_now(self, start: bool, now: float) -> bool:
        """``start``: enough is queued to encode by the ordinary rule; ``now``: monotonic."""
        queue = self.queue
        busy = len(queue.items) >= self.busy_records or queue.mem >= self.busy_mem
        if self.in_burst:
            if queue.seq == self._seen_seq:  # a pause: encode everything queued
                self.in_burst = False
                self._draining = True
                return True
            return busy
        if self._draining:
            return True
        if start and len(queue.items) > BURST_RATE * (now - queue.head_at):
            self.in_burst = True
            self._seen_seq = queue.seq
            return busy
        return start

    def before_wait(self) -> None:
        """The worker waits for a pause: remember how far the queue had got."""
        self._seen_seq = self.queue.seq

    def after_take(self) -> None:
        if not self.queue.items:
            self._draining = False
