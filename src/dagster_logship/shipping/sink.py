"""The contract between the shipping core and a destination.

A sink knows its service's rules (limits, how to send, how to read the answer) and nothing about
queues, threads or retries; the worker knows batching and retries and nothing about any service.
A new destination is a subclass of :class:`Sink` with ``limits``, ``destination`` and ``send``;
``payload``, ``close``, ``after_fork`` and ``sdk_loggers`` when it needs them.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from .snapshots import Snapshot

__all__ = [
    "PAYLOAD",
    "SEQ",
    "SIZE",
    "TEXT",
    "TIMESTAMP",
    "ItemTuple",
    "SendResult",
    "Sink",
    "SinkLimits",
    "event_of",
]


@dataclass(frozen=True)
class SinkLimits:
    """What one request to the service may hold, in the service's own accounting.

    ``max_event_bytes`` bounds one event's encoded text; larger events are split (or truncated)
    by the core before they reach the sink. ``per_event_overhead`` is what the service adds to
    each event when it counts a batch (26 bytes for CloudWatch). ``max_span_seconds`` bounds the
    distance between the oldest and newest event of one batch.
    """

    max_batch_events: int
    max_batch_bytes: int
    max_event_bytes: int
    per_event_overhead: int = 0
    max_span_seconds: float | None = None


#: One event ready to send, as ``send`` receives it: a plain tuple read by position with the
#: constants below: (TEXT: the event's JSON text, PAYLOAD: what :meth:`Sink.payload` made of it,
#: SIZE: bytes in the service's accounting, TIMESTAMP: the record's time, SEQ: its place in the
#: queue). A plain tuple of strings and numbers, because the garbage collector stops tracking
#: such a tuple: items waiting for a full batch at a Dagster op's pace otherwise reach the
#: oldest generation and set off full collections of Dagster's heap (benchmarks/).
ItemTuple = tuple[str, Any, int, float, int]
TEXT: Final = 0
PAYLOAD: Final = 1
SIZE: Final = 2
TIMESTAMP: Final = 3
SEQ: Final = 4


def event_of(text: str) -> dict[str, Any]:
    """The schema event an item's text encodes (for spilling what could not be sent)."""
    try:
        event = json.loads(text)
    except ValueError:
        return {"message": text}
    return event if isinstance(event, dict) else {"message": event}


@dataclass
class SendResult:
    """What the service said about a batch that it answered.

    ``rejected`` holds (index, reason) for events the service refused for good; ``retry`` holds
    the indices of events that failed transiently and must be sent again (alone). Indices refer
    to the sequence passed to :meth:`Sink.send`. Everything else counts as delivered.
    """

    rejected: Sequence[tuple[int, str]] = field(default_factory=tuple)
    retry: Sequence[int] = field(default_factory=tuple)


class Sink(abc.ABC):
    """A destination. ``send`` raises the errors of :mod:`.retry` to classify failures."""

    #: batch rules of the service
    limits: SinkLimits
    #: human readable destination, used in diagnostics and spill lines; never holds secrets
    destination: str = "unknown"
    #: Top-level names of the loggers of the libraries ``send`` goes through (``botocore``,
    #: ``urllib3``...): their records made while we send are dropped (see :mod:`.recursion`).
    sdk_loggers: tuple[str, ...] = ()

    def payload(self, text: str, event: dict[str, Any] | None, snap: Snapshot) -> Any:
        """What ``send`` will need of one event; the default is its JSON ``text``.

        Called on the worker thread for every event. ``event`` is the schema event when the
        core built it (a record with extras or an exception, one part of a split record); for
        the common record the core wrote ``text`` straight from its snapshot and ``event`` is
        None: read the fields you need from ``snap`` (:mod:`.snapshot`), or build the event
        with :func:`.encoding.build_event` (~2 us). Raising sends ``text`` instead.
        """
        return text

    @abc.abstractmethod
    def send(self, items: Sequence[ItemTuple]) -> SendResult | None:
        """Send one batch that obeys :attr:`limits`; per-event outcomes, or None if all went."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients and connections; the sink may be used again afterwards."""

    def after_fork(self) -> None:  # noqa: B027 - optional hook
        """Drop state that must not cross a fork (clients, sockets); rebuilt lazily."""
