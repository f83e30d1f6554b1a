"""A worker's deadline: until when what still fails is retried, and why it is spilled after.

Set at process exit (``flush_timeout``) and at a run's end; unset, a worker retries for
``retry_deadline`` per batch. While it is set no single backoff lasts longer than a sixth of
``flush_timeout``: a process exiting in a throttling storm notices the storm's end within
seconds instead of sleeping through its flush timeout on one long backoff.
"""

from __future__ import annotations

import threading
import time

__all__ = ["EXIT_REASON", "Deadline"]

EXIT_REASON = "process exiting: flush_timeout passed"
#: While a deadline is set, one backoff lasts at most flush_timeout / this.
_ATTEMPTS = 6
_monotonic = time.monotonic


class Deadline:
    """When to give up (``at``, monotonic, or None) and the reason spill lines then carry."""

    def __init__(self, flush_timeout: float) -> None:
        self.at: float | None = None
        self.reason = EXIT_REASON
        self._step = flush_timeout / _ATTEMPTS
        self._interrupt = threading.Event()

    def set(self, at: float, reason: str = "") -> None:
        self.at, self.reason = at, reason or EXIT_REASON
        self._interrupt.set()  # a backoff in progress shortens to the new limit

    def clear(self) -> None:
        self.at, self.reason = None, EXIT_REASON

    def passed(self) -> bool:
        return self.at is not None and _monotonic() >= self.at

    def sleep(self, seconds: float) -> None:
        """Back off for ``seconds``, or less once a deadline is set."""
        if self.at is not None:
            seconds = min(seconds, self._step)
        end = _monotonic() + seconds
        while True:
            at = self.at
            if at is not None:  # a deadline was set during the wait
                end = min(end, _monotonic() + self._step, at)
            remaining = end - _monotonic()
            if remaining <= 0:
                return
            self._interrupt.wait(remaining)
            self._interrupt.clear()
