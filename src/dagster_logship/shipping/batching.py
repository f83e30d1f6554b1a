"""Batching as plain functions: snapshots become items, items become batches a sink sends whole.

No threads and no locks here (the worker calls these outside its lock), so each rule can be
read, and tested, on its own: an event too large for the service is split or truncated
(``oversize``); a batch holds at most the sink's events and bytes, in the service's accounting
(``per_event_overhead``), and spans at most ``max_span_seconds``. For a service with a span
limit (CloudWatch: 24 h) the records of one take are sorted by time first, so that records
logged out of order by several threads do not cut a batch at each step back in time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import itemgetter

from .encoding import build_event, encode, fit_event
from .event_text import event_text
from .sink import SEQ, SIZE, TIMESTAMP, ItemTuple, Sink
from .snapshots import CREATED, Snapshot

__all__ = ["Batch", "cut", "encode_items"]

_by_time = itemgetter(TIMESTAMP)


class Batch:
    """Items a sink can send in one request, with what cutting and settling need to know.

    ``first_seq`` is the smallest sequence number among the items (they may be sorted by time):
    every record before it is settled once the batches before this one are.
    """

    __slots__ = ("first_seq", "hi", "items", "lo", "nbytes")

    def __init__(self, items: list[ItemTuple], nbytes: int, lo: float, hi: float) -> None:
        self.items = items
        self.nbytes = nbytes
        self.lo, self.hi = lo, hi
        self.first_seq = min([item[SEQ] for item in items]) if items else 0

    def __len__(self) -> int:
        return len(self.items)


def encode_items(
    sink: Sink,
    snaps: Sequence[Snapshot],
    first: int,
    max_event: int,
    oversize: str,
    pause: Callable[[], None] | None = None,
) -> tuple[list[ItemTuple], int]:
    """Encode ``snaps`` (numbered from ``first``) into items for ``sink``; returns the items and
    how many extra parts oversized events were split into.

    The common record's text is written straight from its snapshot (``event_text``); the rest
    build the schema event. ``max_event`` bounds one event's text; ``pause``, if given, is
    called every 32 records (the worker lets its sender thread run while a request is out).
    """
    overhead = sink.limits.per_event_overhead
    payload_of = sink.payload
    items: list[ItemTuple] = []
    append = items.append
    split = 0
    for seq, snap in enumerate(snaps, first):
        if pause is not None and not seq & 31:
            pause()
        fast = event_text(snap)
        if fast is not None and fast[1] <= max_event:
            text = fast[0]
            try:
                payload = payload_of(text, None, snap)
            except Exception:
                payload = text
            append((text, payload, fast[1] + overhead, snap[CREATED], seq))
            continue
        event = build_event(snap)
        text, nbytes = fast if fast is not None else encode(event)
        parts = [(event, text, nbytes)]
        if nbytes > max_event:
            parts = fit_event(event, text, nbytes, max_event, oversize)
            split += len(parts) - 1
        for part_event, part_text, part_bytes in parts:
            try:
                payload = payload_of(part_text, part_event, snap)
            except Exception:
                payload = part_text
            append((part_text, payload, part_bytes + overhead, snap[CREATED], seq))
    return items, split


def cut(
    carry: Batch | None,
    items: list[ItemTuple],
    max_events: int,
    max_bytes: int,
    max_span: float | None,
) -> list[Batch]:
    """Cut ``carry`` (a partial batch kept from before) followed by ``items`` into batches; the
    last one may be partial. With ``max_span``, ``items`` are sorted by time (stable) first."""
    if max_span is not None:
        items.sort(key=_by_time)
    batches: list[Batch] = []
    if carry is not None and carry.items:
        current = list(carry.items)
        nbytes, lo, hi = carry.nbytes, carry.lo, carry.hi
    else:
        current, nbytes, lo, hi = [], 0, 0.0, 0.0
    for item in items:
        ts, size = item[TIMESTAMP], item[SIZE]
        if current and (
            len(current) >= max_events
            or nbytes + size > max_bytes
            or (max_span is not None and (ts - lo > max_span or hi - ts > max_span))
        ):
            batches.append(Batch(current, nbytes, lo, hi))
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
        batches.append(Batch(current, nbytes, lo, hi))
    return batches
