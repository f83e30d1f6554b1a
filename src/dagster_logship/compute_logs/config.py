"""Config schema pieces both compute log managers share (``compute_logs.config``)."""

from __future__ import annotations

import os
import tempfile
from typing import Any

from dagster import Field, Map, Noneable, StringSource

from ..loggers._config import shipping_schema
from ..shipping.options import ConfigError, ShippingOptions

__all__ = [
    "DEFAULT_READ_INTERVAL",
    "DEFAULT_TAIL_INTERVAL",
    "capture_schema",
    "default_local_dir",
    "pick_shipping",
    "positive_seconds",
    "string_map",
]

#: Seconds between two looks at a capture file while the step runs.
DEFAULT_TAIL_INTERVAL = 0.2
#: Seconds a reader (the UI) waits at least between two listings of one stream.
DEFAULT_READ_INTERVAL = 1.0


def default_local_dir() -> str:
    """Where captures are written while they run (then deleted): the system's temp dir."""
    return os.path.join(tempfile.gettempdir(), "dagster-logship-compute-logs")


def capture_schema(read_interval: float = DEFAULT_READ_INTERVAL) -> dict[str, Field]:
    """``local_dir``, ``tail_interval``, ``read_interval`` and the shared shipping keys."""
    return {
        "local_dir": Field(
            Noneable(StringSource), is_required=False, default_value=None,
            description="Directory for the capture files while a step runs (deleted once "
            "shipped). Default: a directory in the system's temp dir.",
        ),
        "tail_interval": Field(
            float, is_required=False, default_value=DEFAULT_TAIL_INTERVAL,
            description="Seconds between two reads of a running step's capture files.",
        ),
        "read_interval": Field(
            float, is_required=False, default_value=read_interval,
            description="Seconds between two listings of one stream by the UI's reads.",
        ),
        **shipping_schema(),
    }


def string_map() -> Any:
    """The config type of a ``{name: value}`` mapping of strings (tags, labels)."""
    return Noneable(Map(str, str))  # type: ignore[no-untyped-call]


def positive_seconds(key: str, value: Any) -> float:
    """A finite number > 0, else a ConfigError naming ``key``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1e9:
        raise ConfigError(key, f"got {value!r}", "give a number of seconds > 0")
    return float(value)


def pick_shipping(config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split keywords into the shared shipping keys (validated now) and the rest."""
    names = set(ShippingOptions.names())
    shipping = {k: v for k, v in config.items() if k in names}
    rest = {k: v for k, v in config.items() if k not in names}
    ShippingOptions(**shipping)  # a wrong value fails at instance load, naming the key
    return shipping, rest
