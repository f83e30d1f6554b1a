"""Ship Dagster logs to CloudWatch Logs, Google Cloud Logging and JSON stdout.

Public API: the Dagster loggers and the ``logging`` handlers behind them.
"""

from .handlers import JsonStreamHandler
from .loggers import json_console_logger
from .shipping import ConfigError, ShippingHandler, ShippingOptions

__all__ = [
    "ConfigError",
    "JsonStreamHandler",
    "ShippingHandler",
    "ShippingOptions",
    "json_console_logger",
]

__version__ = "0.1.0"
