"""Ready-made ``logging`` handlers, one per destination, usable without Dagster.

Each constructor takes the same keyword names as its logger's config keys, so a ``dictConfig``
block reads like the run config YAML. Cloud SDKs are imported only when a batch is first sent.
"""

from .cloudwatch import CloudWatchHandler
from .gcp import GcpHandler
from .stream import JsonStreamHandler

__all__ = ["CloudWatchHandler", "GcpHandler", "JsonStreamHandler"]
