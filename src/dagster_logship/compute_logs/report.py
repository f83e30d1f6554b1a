"""One-line reports for operators, written where the process's stderr went before any capture.

While a step runs, fd 2 points at the capture file: a report written there would be read back
by our own tailer and shipped (and, with the service down, reported again). So the descriptor is
duplicated when the manager is built, before Dagster starts capturing, and reports go there.
"""

from __future__ import annotations

import contextlib
import os
import threading

__all__ = ["pin_stderr", "report"]

_lock = threading.Lock()
_pinned: tuple[int, int] | None = None  # (pid, fd)


def pin_stderr() -> None:
    """Remember this process's stderr as it is now (once per process; again after a fork)."""
    global _pinned
    with _lock:
        if _pinned is not None and _pinned[0] == os.getpid():
            return
        try:
            _pinned = (os.getpid(), os.dup(2))
        except OSError:
            _pinned = None


def report(message: str) -> None:
    """Write ``dagster-logship: message`` on the pinned stderr. Never raises."""
    pinned = _pinned
    fd = pinned[1] if pinned is not None and pinned[0] == os.getpid() else 2
    data = memoryview(f"dagster-logship: {message}\n".encode("utf-8", "replace"))
    with contextlib.suppress(OSError):
        while data:
            data = data[os.write(fd, data) :]
