"""The sender thread of a worker: batches handed over by the worker thread, one request at a
time, in order, each delivered or disposed of before the next.

Two threads, so that while a request is out the worker thread encodes the next take: a service
that takes its time to answer no longer stalls the encoding. The batch in flight stays visible
to a process exit (``Worker.abandon_now``) until its spill lines are written.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from .batching import Batch
from .recursion import shipping_thread
from .spill import diagnostic

if TYPE_CHECKING:
    from .worker import Worker

__all__ = ["Sender"]

_IDLE_TICK = 1.0


class Sender:
    """Sends the worker's pending batches. Uses the worker's lock and what it holds."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.thread: threading.Thread | None = None
        self._ready = threading.Condition(worker.lock)

    def hand_over_locked(self) -> bool:
        """Wake the sender for the pending batches, starting it if needed; False if no thread
        can be started (the interpreter is shutting down)."""
        if self.thread is None:
            thread = threading.Thread(
                target=self._loop,
                name=f"dagster-logship send {self.worker.sink.destination}",
                daemon=True,
            )
            try:
                thread.start()
            except RuntimeError:
                return False
            self.thread = thread
        self._ready.notify()
        return True

    def wake_locked(self) -> None:
        self._ready.notify()

    def send_pending(self, epoch: int) -> None:
        """Send the pending batches in order from the calling thread."""
        worker, hand = self.worker, self.worker.in_hand
        while True:
            with worker.lock:
                if hand.epoch != epoch or not hand.pending:
                    return
                batch = hand.in_flight = hand.pending.popleft()
            self._deliver(batch, epoch)
            worker.mark_done()

    def _loop(self) -> None:
        """Runs while batches come; ends when none is pending and the worker thread has
        ended."""
        shipping_thread(True)
        me = threading.current_thread()
        worker, hand = self.worker, self.worker.in_hand
        release = False
        try:
            while True:
                with worker.lock:
                    while not hand.pending:
                        if worker.queue.consumer is None or self.thread is not me:
                            if self.thread is me:
                                self.thread = None
                            release = worker.releasable_locked()
                            worker.progress.notify_all()
                            return
                        self._ready.wait(_IDLE_TICK)
                    batch = hand.in_flight = hand.pending.popleft()
                    epoch = hand.epoch
                    worker.progress.notify_all()  # the worker may encode the next take
                self._deliver(batch, epoch)
                worker.mark_done()
        except BaseException as exc:  # pragma: no cover - a bug; make it visible
            diagnostic(f"sender for {worker.sink.destination} failed: {exc!r}")
        finally:
            with worker.lock:
                if self.thread is me:
                    self.thread = None
                worker.progress.notify_all()
            if release:
                worker.release_sink()

    def _deliver(self, batch: Batch, epoch: int) -> None:
        """Deliver ``batch`` (already in flight), then settle every item in it."""
        worker, hand, deadline = self.worker, self.worker.in_hand, self.worker.deadline
        outcome = worker.delivery.deliver(
            batch.items, deadline.sleep, deadline.passed, lambda: deadline.reason
        )
        with worker.lock:
            stolen = hand.epoch != epoch
            hand.disposing = not stolen
        if stolen:  # abandon_now spilled it already (if also delivered just now, it is both)
            return
        try:
            if outcome.delivered or outcome.rejected:
                worker.stats.add(delivered=outcome.delivered, rejected=outcome.rejected)
            worker.spill_events(outcome.spills)
        finally:
            with worker.lock:
                hand.disposing = False
                if hand.epoch == epoch:
                    hand.in_flight = None
                worker.progress.notify_all()
