"""The contract between the shipping core and a destination.

A sink knows its service's rules (limits, how to send, how to read the answer) and nothing about
queues, threads or retries; the worker knows batching and retries and nothing about any service.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

__all__ = [
    "PAYLOAD",
    "SEQ",
    "SIZE",
    "TEXT",
    "TIMESTAMP",
    "Item",
    "ItemTuple",
    "SendResult",
    "Sink",
    "SinkLimits",
    "event_of",
    "payload_hooks",
    "takes_plain_items",
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


#: An item as the worker holds it: an exact tuple with :class:`Item`'s fields in its order.
#: The garbage collector stops tracking an exact tuple of strings and numbers at its first
#: collection, never a NamedTuple: items waiting for a full batch at a Dagster op's pace reached
#: the oldest generation, ten thousand a run, and set off full collections of Dagster's heap
#: (~150 ms each, benchmarks/).
ItemTuple = tuple[str, Any, int, float, int]
#: ``Sink.plain_payload`` as the worker calls it: (snapshot, event text) -> payload or None.
PlainPayload = Callable[[tuple[Any, ...], str], Any]
#: Positions of :class:`Item`'s fields, for sinks that read items by position.
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


class Item(NamedTuple):
    """One event ready to send: its encoded text, the sink's payload, and what batching needs.

    Plain values, not the event dict: a busy worker holds thousands of items, each a dict of
    dicts that CPython's garbage collector walked on every pass (benchmarks/). The event is read
    back from the text when it is needed (spilling).
    """

    text: str
    payload: Any
    size: int
    timestamp: float
    seq: int = 0

    @property
    def event(self) -> dict[str, Any]:
        """The schema event as encoded (what was, or would have been, sent)."""
        return event_of(self.text)


@dataclass
class SendResult:
    """What the service said about a batch that it answered.

    ``rejected`` holds (index, reason) for events the service refused for good; ``retry`` holds the
    indices of events that failed transiently and must be sent again (alone). Indices refer to the
    sequence passed to :meth:`Sink.send`. Everything else counts as delivered.
    """

    rejected: Sequence[tuple[int, str]] = field(default_factory=tuple)
    retry: Sequence[int] = field(default_factory=tuple)


class Sink(abc.ABC):
    """A destination. Implementations raise the errors of :mod:`.retry` to classify failures."""

    #: batch rules of the service
    limits: SinkLimits
    #: human readable destination, used in diagnostics and spill lines; never holds secrets
    destination: str = "unknown"
    #: True when :meth:`payload` reads the event. When False the payload is the JSON text and
    #: the worker, for the common record, writes that text without building the event dict
    #: (see ``shipping/event_text.py``) and does not call :meth:`payload`.
    needs_event: bool = False
    #: True when :meth:`send` reads items by position only (``item[TEXT]``, ``item[PAYLOAD]``,
    #: ...): it is then handed the plain tuples the worker holds (:data:`ItemTuple`), else
    #: :class:`Item` objects made for the call.
    plain_items: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # A sink with its own payload() reads the event, unless it says otherwise.
        super().__init_subclass__(**kwargs)
        if "payload" in cls.__dict__ and "needs_event" not in cls.__dict__:
            cls.needs_event = True
        # A sink with its own send() (a subclass of one of ours, too) gets Item objects, unless
        # it says it reads them by position.
        if "send" in cls.__dict__ and "plain_items" not in cls.__dict__:
            cls.plain_items = False

    def payload(self, item_event: dict[str, Any], text: str) -> Any:
        """Turn one encoded event into what :meth:`send` needs; the default is the JSON text."""
        return text

    def plain_payload(self, snap: tuple[Any, ...], text: str) -> Any:
        """:meth:`payload` of a plain record, made from its snapshot (``shipping/encoding.py``),
        or None for the general path (:meth:`payload` with the event dict).

        Called only for records whose text ``event_text`` wrote (no exception, no extras, plain
        metadata) and that fit one event. Building the event dict costs ~2 us per record, as
        much again as writing its text: a sink that reads a few fields of it can read them from
        the snapshot instead. The result must equal ``payload(event, text)``; it is not called
        when a ``payload()`` defined further down the class's MRO (a subclass's, a mixin's, the
        instance's) would replace the one it was written for (see :func:`payload_hooks`).
        """
        return None

    @abc.abstractmethod
    def send(self, items: Sequence[Item]) -> SendResult | None:
        """Send one batch that obeys :attr:`limits`; per-event outcomes, or None if all went."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients and connections; the sink may be used again afterwards."""

    def after_fork(self) -> None:  # noqa: B027 - optional hook
        """Drop state that must not cross a fork (clients, sockets); rebuilt lazily."""


def _depth(sink: Sink, name: str) -> int:
    """Where ``name`` comes from for ``sink``: -1 for the instance, else the index in its
    class's MRO of the first class defining it."""
    if name in getattr(sink, "__dict__", {}):
        return -1
    mro = type(sink).__mro__
    return next((i for i, klass in enumerate(mro) if name in klass.__dict__), len(mro))


def payload_hooks(sink: Sink) -> tuple[bool, PlainPayload | None]:
    """(needs_event, plain_payload or None): how the worker calls ``sink``'s payload hooks.

    Read from where each is defined along the MRO, not from the attributes alone: a
    ``payload()`` that a mixin or the instance supplies sits below the class that declared
    ``needs_event`` or wrote ``plain_payload`` for its own ``payload()``, and must still be
    called for every record, with the event built.
    """
    payload_at = _depth(sink, "payload")
    needs_event = bool(sink.needs_event) or payload_at < _depth(sink, "needs_event")
    plain_at = _depth(sink, "plain_payload")
    plain: PlainPayload | None = None
    if plain_at <= payload_at and (plain_at < 0 or type(sink).__mro__[plain_at] is not Sink):
        plain = sink.plain_payload
    return needs_event, plain


def takes_plain_items(sink: Sink) -> bool:
    """Whether ``sink.send`` is handed the worker's tuples (:data:`ItemTuple`) rather than
    :class:`Item` objects: only when ``plain_items`` was declared where that ``send()`` was
    written or below it. A ``send()`` from a subclass, a mixin or the instance, below the
    class that declared ``plain_items``, reads items by name as :meth:`Sink.send` documents."""
    return bool(sink.plain_items) and _depth(sink, "plain_items") <= _depth(sink, "send")
