"""Where records go when they cannot be delivered, so that nothing is lost silently.

A spill line is the schema event with one added key, ``logship_spill``, saying why and where it
was headed; ``dagster-logship replay`` reads such lines back. The file is created with mode 0600
because log records may hold data the operator would not put in a world-readable file. What was
spilled is summed up in one line on stderr when the worker has settled what it was given (the
end of a flush, a run's end, a process exit), and at least every ``REPORT_EVERY`` seconds while
spilling goes on: one line per episode, not one per batch.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from . import stdio
from .encoding import encode

__all__ = ["REPORT_EVERY", "SPILL_KEY", "Spill", "read_spill"]

SPILL_KEY = "logship_spill"
_PREFIX = "dagster-logship:"
#: Seconds between summary lines while records keep being spilled.
REPORT_EVERY = 10.0


def _stderr_write(text: str) -> None:
    """To the process's stderr, also while a host (Dagster's compute-log capture) has redirected
    its descriptor: see :mod:`.stdio`. Never raises."""
    stdio.write_text("stderr", text)


class Spill:
    """Writes undeliverable events as JSON lines to ``path`` (or stderr when ``path`` is None)."""

    def __init__(self, path: str | os.PathLike[str] | None, destination: str) -> None:
        self.path = os.fspath(path) if path is not None else None
        self.destination = destination
        self._lock = threading.Lock()
        self._reset_report()

    def _reset_report(self) -> None:
        self._unreported: Counter[str] = Counter()
        self._places: list[str] = []
        self._reported_at = time.monotonic()

    def after_fork(self) -> None:
        self._lock = threading.Lock()
        self._reset_report()

    def write(self, events: Iterable[tuple[dict[str, Any], str]]) -> int:
        """Spill (event, reason) pairs; returns how many were written. Never raises."""
        now = time.time()
        lines = []
        reasons: Counter[str] = Counter()
        for event, reason in events:
            line = dict(event)
            line[SPILL_KEY] = {
                "reason": reason,
                "destination": self.destination,
                "spilled_at": now,
            }
            lines.append(encode(line)[0])
            reasons[reason] += 1
        if not lines:
            return 0
        data = ("\n".join(lines) + "\n").encode("utf-8")
        where = "stderr"
        with self._lock:
            if self.path is not None:
                try:
                    fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                    try:
                        view = memoryview(data)
                        while view:
                            written = os.write(fd, view)
                            view = view[written:]
                    finally:
                        os.close(fd)
                    where = self.path
                except OSError as exc:
                    _stderr_write(
                        f"{_PREFIX} cannot write spill file {self.path!r} ({exc.strerror}); "
                        "spilling to stderr instead\n"
                    )
                    _stderr_write(data.decode("utf-8"))
            else:
                _stderr_write(data.decode("utf-8"))
            self._unreported.update(reasons)
            if where not in self._places:
                self._places.append(where)
            due = time.monotonic() - self._reported_at >= REPORT_EVERY
        if due:
            self.report()
        return len(lines)

    def report(self) -> None:
        """Write the summary line of what was spilled since the last one, if anything was."""
        with self._lock:
            reasons, places = self._unreported, self._places
            self._reset_report()
        if reasons:
            why = ", ".join(f"{reason} ({n})" for reason, n in reasons.most_common())
            _stderr_write(
                f"{_PREFIX} spilled {sum(reasons.values())} record(s) for {self.destination} "
                f"to {' and '.join(places)}: {why}\n"
            )


def diagnostic(message: str) -> None:
    """One operator-facing line on stderr (never through logging: it could come back to us)."""
    _stderr_write(f"{_PREFIX} {message}\n")


def read_spill(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Yield the spilled events of a spill file (lines that are not spill events are skipped)."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict) and SPILL_KEY in obj:
                yield obj
