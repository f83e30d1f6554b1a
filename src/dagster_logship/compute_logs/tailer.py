"""A thread that ships what a capture file gains while the step runs.

Uploading the file when the step ends (as Dagster's cloud storage managers do) shows nothing
until then and loses everything when the process is killed; following the file ships each line
a moment after it is written. The thread only reads and hands pieces over: the shipping layer's
worker batches and sends them, so a slow service never slows the tailer, and the tailer never
slows the step.

Memory stays bounded because the file is the buffer: the tailer reads on only while the pieces
it handed over and that are not yet delivered stay under a budget (``room``), so a burst of
output, or the service being slow, leaves the backlog on disk rather than in the queue (whose
overflow policy would drop records).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

from .lines import Chunk, LineReader
from .report import report

__all__ = ["Tailer"]

Ship = Callable[[str, Chunk], None]
Room = Callable[[str], bool]
_WAIT_FOR_ROOM = 0.02


class Tailer:
    """Follows ``paths`` (``{"stdout": path, "stderr": path}``) every ``interval`` seconds and
    calls ``ship(io_name, chunk)`` for each new piece, in file order per stream, while
    ``room(io_name)`` says the destination can take more."""

    def __init__(self, paths: Mapping[str, str], ship: Ship, interval: float,
                 room: Room | None = None) -> None:
        self._readers = {name: LineReader(path) for name, path in paths.items()}
        self._ship = ship
        self._room = room
        self._interval = interval
        self._stop = threading.Event()
        self._lock = threading.Lock()  # one reader at a time: the thread, or stop()'s drain
        self._thread = threading.Thread(target=self._run, name="dagster-logship-tailer",
                                        daemon=True)
        self.shipped = 0
        self.errors = 0

    def start(self) -> None:
        self._thread.start()

    def positions(self) -> dict[str, int]:
        """Bytes of each file handed out so far (the offset where the next piece starts)."""
        return {name: reader.position for name, reader in self._readers.items()}

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.poll()

    def _has_room(self, name: str) -> bool:
        try:
            return self._room is None or self._room(name)
        except Exception:
            return True

    def poll(self, final: bool = False, deadline: float | None = None) -> bool:
        """Hand out what each file gained, as far as there is room (``final``: all of it,
        waiting for room until ``deadline``). True if every file was read to its end. Never
        raises: a failure is reported once."""
        complete = True
        with self._lock:
            for name, reader in self._readers.items():
                try:
                    complete = self._drain(name, reader, final, deadline) and complete
                except Exception as exc:
                    complete = False
                    self.errors += 1
                    if self.errors == 1:
                        report(f"reading the captured {name} failed: {exc!r} (reported once)")
        return complete

    def _drain(self, name: str, reader: LineReader, final: bool, deadline: float | None) -> bool:
        while True:
            while not self._has_room(name):
                if not final or (deadline is not None and time.monotonic() >= deadline):
                    return False
                time.sleep(_WAIT_FOR_ROOM)
            chunks = reader.read(final=final)
            if not chunks:
                return True
            for chunk in chunks:
                self._ship(name, chunk)
                self.shipped += 1

    def stop(self, deadline: float | None = None) -> bool:
        """Stop the thread, then hand out everything left (the last partial line included),
        waiting for room until ``deadline``. True if everything was handed out."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(None if deadline is None else max(0.1, deadline - time.monotonic()))
        return self.poll(final=True, deadline=deadline)
