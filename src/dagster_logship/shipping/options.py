"""The shipping keys every logger and handler shares, with their defaults and validation.

One dataclass so that the three loggers expose the same names with the same defaults, and so a
wrong value fails when the handler is built, with a message naming the key and the fix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

__all__ = ["OVERFLOW_POLICIES", "OVERSIZE_MODES", "ConfigError", "ShippingOptions"]

OVERFLOW_POLICIES = ("block", "drop_oldest", "drop_newest")
OVERSIZE_MODES = ("split", "truncate")


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the key, the rule and the fix."""

    def __init__(self, key: str, problem: str, fix: str) -> None:
        super().__init__(f"{key}: {problem}. Fix: {fix}")
        self.key = key


@dataclass(frozen=True)
class ShippingOptions:
    """Batching, queue, retry, exit and spill settings (README: "Configuration").

    Defaults are for production: a 2 s batching window; a queue of 100,000 records / 64 MiB that
    makes the caller wait at most 0.5 s when full before dropping (counted); retries for up to
    120 s per batch while the process lives; at most 30 s of waiting at process exit, after which
    what is left is spilled.
    """

    flush_interval: float = 2.0
    max_batch_size: int | None = None
    max_batch_bytes: int | None = None
    queue_max_records: int = 100_000
    queue_max_bytes: int = 64 * 1024 * 1024
    overflow: str = "block"
    block_timeout: float = 0.5
    retry_deadline: float = 120.0
    retry_initial_backoff: float = 0.2
    retry_max_backoff: float = 20.0
    flush_timeout: float = 30.0
    spill_path: str | None = None
    oversize: str = "split"

    def __post_init__(self) -> None:
        def positive(key: str, value: float, allow_zero: bool = False) -> None:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            ok = ok and math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
            if not ok:
                rule = "a number >= 0" if allow_zero else "a number > 0"
                raise ConfigError(key, f"got {value!r}, must be {rule}", f"set {key} to {rule}")

        positive("flush_interval", self.flush_interval)
        positive("queue_max_records", self.queue_max_records)
        positive("queue_max_bytes", self.queue_max_bytes)
        positive("block_timeout", self.block_timeout, allow_zero=True)
        positive("retry_deadline", self.retry_deadline, allow_zero=True)
        positive("retry_initial_backoff", self.retry_initial_backoff)
        positive("retry_max_backoff", self.retry_max_backoff)
        positive("flush_timeout", self.flush_timeout, allow_zero=True)
        for key in ("max_batch_size", "max_batch_bytes"):
            value = getattr(self, key)
            if value is not None:
                positive(key, value)
        if self.overflow not in OVERFLOW_POLICIES:
            raise ConfigError(
                "overflow",
                f"got {self.overflow!r}",
                f"use one of {', '.join(OVERFLOW_POLICIES)}",
            )
        if self.oversize not in OVERSIZE_MODES:
            raise ConfigError(
                "oversize", f"got {self.oversize!r}", f"use one of {', '.join(OVERSIZE_MODES)}"
            )
        if self.spill_path is not None and not isinstance(self.spill_path, str):
            raise ConfigError("spill_path", f"got {self.spill_path!r}", "give a file path string")

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def pick(cls, values: dict[str, Any]) -> tuple[ShippingOptions, dict[str, Any]]:
        """Split keyword arguments into shipping options and the rest."""
        names = set(cls.names())
        mine = {k: v for k, v in values.items() if k in names}
        rest = {k: v for k, v in values.items() if k not in names}
        return cls(**mine), rest
