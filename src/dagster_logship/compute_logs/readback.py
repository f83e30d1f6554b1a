"""Putting a captured stream back together from the events a service returns.

Each event carries the byte ``offset`` of its piece in the captured file and its ``length``
there, so the pieces can be laid out again whatever order the service lists them in, a piece
delivered twice (a retried batch) is kept once, and the read API's cursor is a plain byte
offset, as with Dagster's local files. While the capture runs, a read stops at the first hole (a
piece still on its way): the UI asks again and gets it then. Once the completion marker arrived
(it carries the stream's total size), holes are skipped: those pieces were spilled.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Piece", "StreamCache", "StreamState", "due", "is_marker", "piece_of"]


@dataclass(frozen=True)
class Piece:
    offset: int
    length: int
    data: bytes


def is_marker(event: Mapping[str, Any]) -> bool:
    """Whether an event is a capture's start or completion marker rather than a line."""
    return bool(event.get("capture_started") or event.get("capture_complete"))


def _int(value: Any) -> int | None:
    """An int, also from a JSON number read back as a float (Cloud Logging's Struct values)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def piece_of(event: Mapping[str, Any]) -> Piece | None:
    """The piece a shipped event stands for; None for the completion marker or a foreign event."""
    offset, length = _int(event.get("offset")), _int(event.get("length"))
    text = event.get("message")
    if offset is None or length is None or not isinstance(text, str):
        return None
    if is_marker(event):
        return None
    data = text.encode("utf-8", "replace") + (b"\n" if event.get("eol", True) else b"")
    return Piece(offset, length, data)


@dataclass
class StreamState:
    """What has been read of one stream so far, and where the service's listing stood."""

    exists: bool = False
    total: int | None = None  # the stream's size, once the completion marker was seen
    token: Any = None  # the backend's resume point (a CloudWatch token, a Cloud Logging time)
    checked_at: float = 0.0
    offsets: list[int] = field(default_factory=list)
    pieces: dict[int, Piece] = field(default_factory=dict)
    size: int = 0  # bytes of data held

    @property
    def complete(self) -> bool:
        return self.total is not None

    def add_event(self, event: Mapping[str, Any]) -> None:
        """Take one listed event (ours or not; duplicates and foreign ones are ignored)."""
        self.exists = True
        if event.get("capture_started"):
            return
        if event.get("capture_complete"):
            total = _int(event.get("offset"))
            if total is not None:
                self.total = total
            return
        piece = piece_of(event)
        if piece is None or piece.offset in self.pieces:
            return
        bisect.insort(self.offsets, piece.offset)
        self.pieces[piece.offset] = piece
        self.size += len(piece.data)

    def has_holes(self) -> bool:
        """Whether pieces are missing before the last one held (or before the stream's end,
        once known): on their way, listed late by the service, or never delivered."""
        pos = 0
        for offset in self.offsets:
            if offset > pos:
                return True
            pos = max(pos, offset + self.pieces[offset].length)
        return self.total is not None and pos < self.total

    def read(self, offset: int, max_bytes: int | None) -> tuple[bytes | None, int]:
        """Bytes from ``offset`` (at most ``max_bytes``, but never less than one whole piece
        when the piece's text is not its exact bytes) and the offset to read from next."""
        if not self.exists:
            return None, offset
        out = bytearray()
        pos = max(0, offset)
        i = bisect.bisect_right(self.offsets, pos) - 1
        if i < 0 or self.offsets[i] + self.pieces[self.offsets[i]].length <= pos:
            i += 1
        while i < len(self.offsets):
            if max_bytes is not None and len(out) >= max_bytes:
                break
            piece = self.pieces[self.offsets[i]]
            if piece.offset > pos:
                if not self.complete:
                    break  # a hole: that piece is still on its way
                pos = piece.offset  # never delivered (spilled): skip it
            skip = pos - piece.offset
            exact = len(piece.data) == piece.length
            rest = piece.data[skip:] if exact else piece.data
            room = None if max_bytes is None else max_bytes - len(out)
            if exact and room is not None and len(rest) > room:
                out += rest[:room]
                pos += room
                break
            out += rest
            pos = piece.offset + piece.length
            i += 1
        if self.total is not None and not out and pos < self.total and i >= len(self.offsets):
            pos = max(pos, self.total)  # only undelivered bytes remain
        return bytes(out), pos


class StreamCache:
    """Stream states by key, least recently used dropped beyond ``max_bytes`` held (a reader
    gets a dropped stream again from the service)."""

    def __init__(self, max_bytes: int = 64 * 1024 * 1024, max_streams: int = 256) -> None:
        self._states: OrderedDict[Hashable, StreamState] = OrderedDict()
        self._max_bytes = max_bytes
        self._max_streams = max_streams
        self.lock = threading.RLock()

    def get(self, key: Hashable) -> StreamState:
        with self.lock:
            state = self._states.get(key)
            if state is None:
                state = self._states[key] = StreamState()
            self._states.move_to_end(key)
            self._trim()
            return state

    def drop(self, key: Hashable) -> None:
        with self.lock:
            self._states.pop(key, None)

    def drop_where(self, predicate: Any) -> None:
        with self.lock:
            for key in [k for k in self._states if predicate(k)]:
                del self._states[key]

    def _trim(self) -> None:
        held = sum(state.size for state in self._states.values())
        while len(self._states) > 1 and (
            held > self._max_bytes or len(self._states) > self._max_streams
        ):
            _, oldest = self._states.popitem(last=False)
            held -= oldest.size


def due(state: StreamState, interval: float) -> bool:
    """Whether to ask the service again: never once complete, else at most every ``interval``."""
    return not state.complete and time.monotonic() - state.checked_at >= interval
