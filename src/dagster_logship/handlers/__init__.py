"""Ready-made ``logging`` handlers, one per destination, usable without Dagster.

Each constructor takes the same keyword names as its logger's config keys, so a ``dictConfig``
block reads like the run config YAML.
"""

from .stream import JsonStreamHandler

__all__ = ["JsonStreamHandler"]
