"""Failure classes every sink raises, and the retry policy built on tenacity.

Sinks classify; the worker decides. A failure is either transient (retry the batch, or the listed
events, with backoff until the deadline), permanent for the whole batch (spill it), or permanent
for single events (reported through :class:`~.sink.SendResult`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import tenacity

__all__ = [
    "BatchRejectedError",
    "RetryPolicy",
    "RetryableError",
    "ShippingError",
    "build_retrying",
]


class ShippingError(Exception):
    """Base class of the errors a sink raises to the worker."""


class RetryableError(ShippingError):
    """Transient failure (throttling, 5xx, timeouts, connection errors): try again later.

    ``retry_after`` is a server hint in seconds, used as the floor of the next wait.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BatchRejectedError(ShippingError):
    """Permanent failure of a whole batch (bad credentials, access denied, invalid request).

    ``diagnostic`` is one line for the operator (what is wrong and how to fix it); the worker
    prints it once per destination rather than once per batch.
    """

    def __init__(self, reason: str, diagnostic: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.diagnostic = diagnostic


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded by a total deadline per batch."""

    initial_backoff: float = 0.2
    max_backoff: float = 20.0
    deadline: float = 120.0

    def __post_init__(self) -> None:
        if self.initial_backoff <= 0 or self.max_backoff <= 0 or self.deadline < 0:
            raise ValueError("retry backoffs must be > 0 and the deadline >= 0")


class _RetryAfterFloor(tenacity.wait.wait_base):
    """Wait at least what the server asked for, else the jittered backoff."""

    def __init__(self, inner: tenacity.wait.wait_base) -> None:
        self.inner = inner

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        wait = float(self.inner(retry_state))
        outcome = retry_state.outcome
        if outcome is not None and outcome.failed:
            exc = outcome.exception()
            if isinstance(exc, RetryableError) and exc.retry_after:
                wait = max(wait, exc.retry_after)
        return wait


class _GiveUp(tenacity.stop.stop_base):
    """Stop when the worker says so (the process is exiting)."""

    def __init__(self, give_up: Callable[[], bool]) -> None:
        self.give_up = give_up

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        return self.give_up()


def build_retrying(
    policy: RetryPolicy,
    *,
    give_up: Callable[[], bool],
    sleep: Callable[[float], Any],
    on_retry: Callable[[], None],
) -> tenacity.Retrying:
    """A tenacity ``Retrying`` for one batch.

    ``give_up`` lets the worker stop early (process exit); ``sleep`` is interruptible so that exit
    does not wait out a backoff. The last error is re-raised when the policy gives up.
    """

    stop = tenacity.stop_before_delay(policy.deadline) | _GiveUp(give_up)
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(RetryableError),
        wait=_RetryAfterFloor(
            tenacity.wait_random_exponential(
                multiplier=policy.initial_backoff, max=policy.max_backoff
            )
        ),
        stop=stop,
        sleep=sleep,
        before_sleep=lambda _state: on_retry(),
        reraise=True,
    )


def monotonic() -> float:
    return time.monotonic()
