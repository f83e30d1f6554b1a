"""What a worker holds between its queue and the service, visible to flush and process exit.

Records move queue -> taken (being encoded) -> carry (a partial batch kept to fill) -> pending
(batches formed, not yet sent) -> in flight (the request out now). A flush waits until the
oldest record still held is past its target; a process exit takes all of it at once to spill.
"""

from __future__ import annotations

from collections import deque

from .batching import Batch
from .sink import ItemTuple
from .snapshots import Snapshot

__all__ = ["InHand"]


class InHand:
    """The worker's records past the queue. Read and changed under the worker's lock."""

    def __init__(self) -> None:
        self.taken: list[Snapshot] = []
        self.taken_first = 0  # sequence number of taken[0]
        self.taken_at = 0.0  # the queue's head_at when they were taken
        self.carry: Batch | None = None
        self.carry_at = 0.0  # age of the carried batch's oldest record
        self.pending: deque[Batch] = deque()
        self.in_flight: Batch | None = None
        #: Changes when a process exit took everything (see :meth:`take_all`): a thread that
        #: took records in an older epoch learns that they were spilled meanwhile.
        self.epoch = 0
        #: True while the sender writes the spill lines of the batch in flight.
        self.disposing = False

    def first_unsettled(self, next_in_queue: int) -> int:
        """The sequence number of the oldest record not yet delivered or disposed of."""
        if self.in_flight is not None:
            return self.in_flight.first_seq
        if self.pending:
            return self.pending[0].first_seq
        if self.carry is not None:
            return self.carry.first_seq
        if self.taken:
            return self.taken_first
        return next_in_queue

    def holds_nothing(self) -> bool:
        return (
            not self.taken
            and self.carry is None
            and not self.pending
            and self.in_flight is None
        )

    def take_all(self) -> tuple[list[Snapshot], list[ItemTuple]]:
        """Everything held, emptied at once: (snapshots not yet encoded, encoded items)."""
        batches = [self.carry, *self.pending, self.in_flight]
        items = [item for batch in batches if batch is not None for item in batch.items]
        snaps = self.taken
        self.taken, self.carry, self.in_flight = [], None, None
        self.pending = deque()
        self.epoch += 1
        return snaps, items
