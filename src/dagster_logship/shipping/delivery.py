"""Delivery of one batch: retries, per-event outcomes, pacing after throttling, what to spill.

The sink sends and classifies (``RetryableError``, ``BatchRejectedError``, a ``SendResult``
naming rejected and retryable events); this decides what happens next. Retries follow the
``RetryPolicy`` (tenacity) until ``retry_deadline``; after a batch exhausted it, the destination
counts as degraded and failing batches are spilled at once until a send succeeds. A batch that
needed retries makes the next ones wait a jittered pace first, which doubles after each retried
batch and halves after each clean one: processes sharing a quota then stop offering twice it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .options import ShippingOptions
from .recursion import quiet_loggers
from .retry import BatchRejectedError, RetryableError, RetryPolicy, build_retrying
from .sink import TEXT, ItemTuple, Sink, event_of
from .spill import diagnostic
from .stats import DeliveryStats

__all__ = ["Delivery", "Outcome"]

#: The pace between batches after throttling is at most this many initial backoffs (2 s with the
#: defaults): enough to spread dozens of processes over a quota, short enough that a worker
#: resumes its full rate within seconds once the quota is free.
_PACE_CEILING = 10


class _Abandoned(Exception):
    """The worker's deadline (process exit, a run's end) has passed."""


@dataclass
class Outcome:
    """What became of a batch: counts, and the (event, reason) pairs to spill."""

    delivered: int = 0
    rejected: int = 0
    spills: list[tuple[dict[str, Any], str]] = field(default_factory=list)


class Delivery:
    """Sends batches to one sink, one at a time, with retries and pacing."""

    def __init__(self, sink: Sink, options: ShippingOptions, stats: DeliveryStats) -> None:
        self.sink = sink
        self.options = options
        self.stats = stats
        self._policy = RetryPolicy(
            initial_backoff=options.retry_initial_backoff,
            max_backoff=options.retry_max_backoff,
            deadline=options.retry_deadline,
        )
        self._degraded_policy = RetryPolicy(
            initial_backoff=options.retry_initial_backoff,
            max_backoff=options.retry_max_backoff,
            deadline=0.0,
        )
        self.degraded = False
        self.pace = 0.0
        self._diagnosed: set[str] = set()

    def deliver(
        self,
        batch: Sequence[ItemTuple],
        sleep: Callable[[float], None],
        give_up: Callable[[], bool],
        give_up_reason: Callable[[], str],
    ) -> Outcome:
        """Send ``batch`` until every item is delivered, rejected or given up on.

        ``sleep`` waits (interruptibly); ``give_up`` says the worker's deadline has passed, and
        ``give_up_reason`` why (it becomes the spill reason)."""
        outcome = Outcome()
        remaining: Sequence[ItemTuple] = batch
        if self.pace > 0 and not self.degraded:
            sleep(random.uniform(self.pace / 2, self.pace))
        retries = 0
        sdk_loggers = self.sink.sdk_loggers

        def count_retry() -> None:
            nonlocal retries
            retries += 1
            self.stats.add(retried=1)

        def attempt() -> None:
            nonlocal remaining
            if give_up():
                raise _Abandoned
            quiet_loggers(sdk_loggers)  # SDK loggers made since the last request
            try:
                result = self.sink.send(remaining)
            finally:
                quiet_loggers(sdk_loggers)  # and those the request made
            self.stats.add(batches=1)
            retry_idx: Sequence[int] = ()
            if result is not None:
                for index, reason in result.rejected:
                    outcome.spills.append(
                        (event_of(remaining[index][TEXT]), f"rejected by service: {reason}")
                    )
                outcome.rejected += len(result.rejected)
                retry_idx = result.retry
            settled = len(result.rejected) if result is not None else 0
            outcome.delivered += len(remaining) - settled - len(retry_idx)
            if retry_idx:
                remaining = [remaining[i] for i in retry_idx]
                raise RetryableError(f"{len(retry_idx)} event(s) failed transiently")
            remaining = []

        retrying = build_retrying(
            self._degraded_policy if self.degraded else self._policy,
            give_up=give_up,
            sleep=sleep,
            on_retry=count_retry,
        )
        reason: str | None = None
        try:
            retrying(attempt)
            self.degraded = False
            self._adjust_pace(retries)
        except RetryableError as exc:
            if give_up():
                reason = f"{give_up_reason()} ({exc})"
            else:
                reason = f"retries exhausted ({exc})"
                self.degraded = True
                self.diagnose(
                    f"{self.sink.destination}: giving up on a batch after "
                    f"{self.options.retry_deadline:g}s of retries: {exc}; spilling it. "
                    "Until a send succeeds, failing batches are spilled without waiting."
                )
        except _Abandoned:
            reason = give_up_reason()
        except BatchRejectedError as exc:
            if exc.diagnostic:
                self.diagnose(f"{self.sink.destination}: {exc.diagnostic}")
            reason = exc.reason
        except Exception as exc:
            self.diagnose(f"{self.sink.destination}: unexpected error while sending: {exc!r}")
            reason = f"unexpected error: {type(exc).__name__}"
        if reason is not None:
            outcome.spills += [(event_of(item[TEXT]), reason) for item in remaining]
        return outcome

    def _adjust_pace(self, retries: int) -> None:
        """Slow down fast after a retried batch, speed up gradually after clean ones; a healthy
        destination has no pace, hence no added latency."""
        initial = self.options.retry_initial_backoff
        if retries:
            ceiling = min(self.options.retry_max_backoff, _PACE_CEILING * initial)
            self.pace = min(ceiling, max(initial, self.pace * 2))
        elif self.pace:
            self.pace = self.pace / 2 if self.pace / 2 >= initial / 2 else 0.0

    def diagnose(self, line: str) -> None:
        """One stderr line, once per distinct text."""
        if line not in self._diagnosed:
            self._diagnosed.add(line)
            diagnostic(line)
