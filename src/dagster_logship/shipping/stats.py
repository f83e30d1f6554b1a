"""Delivery counters of one destination in one process."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass

__all__ = ["DeliveryStats"]


@dataclass
class DeliveryStats:
    """Counts of records by fate; readable as a dict through :meth:`snapshot`.

    ``enqueued`` counts records accepted by ``emit``; an oversized record that was split counts
    once here and once per part in ``delivered``/``spilled`` (``parts_split`` says how many extra
    parts were made). ``suppressed`` counts records made on the shipping layer's own threads
    that reached this handler, which are never shipped to avoid recursion (the SDKs' own records
    made there are dropped earlier, at their loggers: see ``worker.quiet_sdk_loggers``).
    """

    enqueued: int = 0
    delivered: int = 0
    retried: int = 0
    rejected: int = 0
    dropped: int = 0
    spilled: int = 0
    suppressed: int = 0
    parts_split: int = 0
    batches: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            data = asdict(self)
        return data
