"""Reading a growing capture file as lines with byte offsets.

Dagster captures a step's stdout/stderr by pointing file descriptors 1 and 2 at a file; every
writer (Python, C extensions, subprocesses) appends to it. We read what was appended since the
last look and cut it into lines, each with the byte offset where it starts in the file, so the
read API can page by offset and a line delivered twice is recognised by its offset.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

__all__ = ["MAX_CHUNK_BYTES", "READ_BYTES", "Chunk", "LineReader", "cut_utf8"]

#: The longest piece of a line shipped as one event. Under both services' per-event limits
#: (CloudWatch 1 MB, Cloud Logging 256 KiB for the whole entry) with room for the other fields.
MAX_CHUNK_BYTES = 64 * 1024
#: Bytes read from a file per look: bounds what one poll holds in memory.
READ_BYTES = 1024 * 1024
#: A partial line (no newline yet: a progress bar, ``print(..., end="")``) waiting this long is
#: shipped as it is; the rest of the line follows as its own piece.
PARTIAL_LINE_SECONDS = 1.0


@dataclass(frozen=True)
class Chunk:
    """A line (or a piece of a long one) at ``offset`` in the file, ``length`` bytes there.

    ``text`` is the bytes decoded as UTF-8 (invalid bytes as U+FFFD) without the newline;
    ``eol`` says whether the piece ended with one.
    """

    offset: int
    length: int
    text: str
    eol: bool

    def data(self) -> bytes:
        """The bytes the piece stands for, as far as the text can give them back."""
        return self.text.encode("utf-8", "replace") + (b"\n" if self.eol else b"")


def cut_utf8(data: bytes, limit: int) -> int:
    """Where to cut ``data`` at most ``limit`` bytes in without splitting a UTF-8 character."""
    if len(data) <= limit:
        return len(data)
    cut = limit
    # Back off continuation bytes (10xxxxxx), at most 3: a character is at most 4 bytes.
    while cut > limit - 3 and cut > 0 and (data[cut] & 0xC0) == 0x80:
        cut -= 1
    return cut if cut > 0 else limit


def _chunk(offset: int, raw: bytes, eol: bool) -> Chunk:
    body = raw[:-1] if eol else raw
    return Chunk(offset, len(raw), body.decode("utf-8", "replace"), eol)


class LineReader:
    """Follows one file from offset 0, handing out whole lines (and pieces of very long ones).

    The file may not exist yet (the capture creates it) and is never held open between looks,
    so a file deleted or replaced underneath costs nothing.
    """

    def __init__(self, path: str, max_chunk: int = MAX_CHUNK_BYTES) -> None:
        self.path = path
        self.max_chunk = max_chunk
        #: Offset in the file of the first byte not yet handed out.
        self.position = 0
        self._pending = b""
        self._pending_since = 0.0

    def read(self, final: bool = False, now: float | None = None) -> list[Chunk]:
        """The pieces of at most :data:`READ_BYTES` more of the file (call again until it
        returns nothing: the file, not memory, holds a backlog). ``final``: the writers are
        done, so a last line without newline is handed out too."""
        chunks: list[Chunk] = []
        now = time.monotonic() if now is None else now
        data = b""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            fd = -1
        if fd >= 0:
            try:
                data = os.pread(fd, READ_BYTES, self.position + len(self._pending))
            finally:
                os.close(fd)
        if data:
            if not self._pending:
                self._pending_since = now
            self._pending += data
            self._cut(chunks)
            if chunks:  # what is left began with this read's bytes
                self._pending_since = now
        at_end = len(data) < READ_BYTES
        if at_end and self._pending and (
            final or now - self._pending_since >= PARTIAL_LINE_SECONDS
        ):
            self._emit(chunks, self._pending, eol=False)
        return chunks

    def _cut(self, chunks: list[Chunk]) -> None:
        pending = self._pending
        start = 0
        while True:
            newline = pending.find(b"\n", start, start + self.max_chunk)
            if newline >= 0:
                self._emit_at(chunks, pending[start : newline + 1], eol=True)
                start = newline + 1
                continue
            if len(pending) - start >= self.max_chunk:
                cut = cut_utf8(pending[start:], self.max_chunk)
                self._emit_at(chunks, pending[start : start + cut], eol=False)
                start += cut
                continue
            break
        self._pending = pending[start:]

    def _emit_at(self, chunks: list[Chunk], raw: bytes, eol: bool) -> None:
        chunks.append(_chunk(self.position, raw, eol))
        self.position += len(raw)

    def _emit(self, chunks: list[Chunk], raw: bytes, eol: bool) -> None:
        self._emit_at(chunks, raw, eol)
        self._pending = b""
