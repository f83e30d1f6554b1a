"""Config schema pieces every logger shares, and their translation into handler keywords."""

from __future__ import annotations

import logging
from dataclasses import fields
from typing import Any

from dagster import Field, Noneable, StringSource

from ..shipping.options import ConfigError, ShippingOptions
from ._relay import RelayLogger

__all__ = ["build_logger", "coerce_level", "common_schema", "shipping_kwargs", "shipping_schema"]

_DESCRIPTIONS = {
    "flush_interval": "Seconds a record may wait to fill a batch before it is sent.",
    "max_batch_size": "Events per request (default and ceiling: the service's maximum).",
    "max_batch_bytes": "Bytes per request as the service counts them (default, ceiling: its max).",
    "queue_max_records": "Records held in memory per destination before overflow applies.",
    "queue_max_bytes": "Approximate bytes held in memory per destination before overflow applies.",
    "overflow": "When the queue is full: block (up to block_timeout, then drop), drop_oldest "
    "or drop_newest.",
    "block_timeout": "Seconds a log call may wait for room when overflow is block.",
    "retry_deadline": "Seconds a batch is retried (throttling, 5xx, timeouts), then spilled.",
    "retry_initial_backoff": "First backoff in seconds (exponential, full jitter).",
    "retry_max_backoff": "Longest single backoff in seconds.",
    "flush_timeout": "Seconds a process waits at exit (and close) for delivery, then spills.",
    "spill_path": "File (mode 0600) for undeliverable records (JSON lines); else stderr.",
    "oversize": "Events over the service's size limit: split (ordered parts) or truncate.",
}


def shipping_schema() -> dict[str, Field]:
    """The shared keys, with the same names and defaults as :class:`ShippingOptions`."""
    schema: dict[str, Field] = {}
    for f in fields(ShippingOptions):
        default = f.default
        description = _DESCRIPTIONS[f.name]
        if f.name == "spill_path":
            kind: Any = Noneable(StringSource)
        elif f.name in ("max_batch_size", "max_batch_bytes"):
            kind = Noneable(int)
        elif f.name in ("queue_max_records", "queue_max_bytes"):
            kind = int
        elif f.name in ("overflow", "oversize"):
            kind = StringSource
        else:
            kind = float
        schema[f.name] = Field(
            kind, is_required=False, default_value=default, description=description
        )
    return schema


def common_schema() -> dict[str, Field]:
    """``log_level`` and ``name``, as in Dagster's own loggers."""
    return {
        "log_level": Field(StringSource, is_required=False, default_value="INFO"),
        "name": Field(StringSource, is_required=False, default_value="dagster"),
    }


def coerce_level(value: Any) -> int:
    """A level name (any case) or number; anything else fails naming ``log_level``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return int(text)
        level = logging.getLevelName(text.upper())
        if isinstance(level, int):
            return level
    raise ConfigError(
        "log_level",
        f"got {value!r}",
        "use DEBUG, INFO, WARNING, ERROR, CRITICAL or a number",
    )


def shipping_kwargs(config: dict[str, Any]) -> dict[str, Any]:
    """The shared keys present in a logger config, as handler keywords."""
    return {k: config[k] for k in ShippingOptions.names() if k in config}


def build_logger(name: str, level: Any, handler: logging.Handler) -> logging.Logger:
    """A standalone logger (not registered globally, so it is freed with the run) that takes
    Dagster's relayed calls to ``handler`` without a ``LogRecord`` (see ``_relay.py``)."""
    logger_ = RelayLogger(name, level=coerce_level(level))
    logger_.addHandler(handler)
    return logger_
