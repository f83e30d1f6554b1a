"""The shipping layer: a non-blocking handler, a batching worker, retries and spill.

Imports neither dagster nor any cloud SDK, so it can be used (and tested) on its own.
"""

from .encoding import SCHEMA_FIELDS, build_event, encode
from .handler import ShippingHandler
from .lifecycle import flush_all
from .options import ConfigError, ShippingOptions
from .retry import BatchRejectedError, RetryableError, RetryPolicy, ShippingError
from .sink import ItemTuple, SendResult, Sink, SinkLimits
from .snapshots import snapshot
from .spill import SPILL_KEY, read_spill
from .stats import DeliveryStats

__all__ = [
    "SCHEMA_FIELDS",
    "SPILL_KEY",
    "BatchRejectedError",
    "ConfigError",
    "DeliveryStats",
    "ItemTuple",
    "RetryPolicy",
    "RetryableError",
    "SendResult",
    "ShippingError",
    "ShippingHandler",
    "ShippingOptions",
    "Sink",
    "SinkLimits",
    "build_event",
    "encode",
    "flush_all",
    "read_spill",
    "snapshot",
]
