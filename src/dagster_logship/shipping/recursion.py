"""The recursion guard: records made while we send are never shipped, nor seen by other handlers.

Our shipping threads call SDKs (botocore, urllib3, google) that log about each request. Shipping
those records would recurse, and other handlers (Dagster capturing the root logger at DEBUG)
would store them, botocore's request headers and session token among them. Two guards:
``ShippingHandler`` refuses any record made on a shipping thread (:func:`in_shipping_thread`),
and :func:`quiet_loggers` puts a filter on the SDK loggers a sink names (``Sink.sdk_loggers``),
which drops the records made on our threads before any handler sees them. Logger filters apply
where a record is made, so the application's own use of the same SDKs is untouched.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

__all__ = ["in_shipping_thread", "quiet_loggers", "shipping_thread"]


class _ThreadFlags(threading.local):
    #: True on a thread that sends for us. A class attribute, so that reading it on any other
    #: thread finds the default without raising (``ShippingHandler.handle`` reads it directly).
    active = False


flags = _ThreadFlags()


def in_shipping_thread() -> bool:
    """True on a thread that is sending for us: its log records must not come back to us."""
    return flags.active


def shipping_thread(active: bool = True) -> bool:
    """Mark (or unmark) the calling thread as one that sends for us; returns the previous mark."""
    previous, flags.active = flags.active, active
    return previous


class _NotFromShippingThreads(logging.Filter):
    """Drops the records an SDK makes on our shipping threads, before any handler sees them."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not flags.active


_filter = _NotFromShippingThreads()
#: Size of logging's logger registry when each set of names was last applied.
_seen: dict[frozenset[str], int] = {}


def quiet_loggers(names: Iterable[str]) -> None:
    """Filter the loggers whose top-level name is in ``names`` (and their children).

    Cheap enough to call around every request: it walks the logger registry only when that has
    grown since the last call for the same names (SDKs create some loggers lazily, during the
    first request).
    """
    key = frozenset(names)
    registry = logging.Logger.manager.loggerDict
    if not key or _seen.get(key) == len(registry):
        return
    _seen[key] = len(registry)
    for name, candidate in list(registry.items()):
        if (
            name.split(".", 1)[0] in key
            and isinstance(candidate, logging.Logger)
            and _filter not in candidate.filters
        ):
            candidate.addFilter(_filter)
