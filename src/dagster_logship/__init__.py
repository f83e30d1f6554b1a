"""Ship Dagster logs to CloudWatch Logs, Google Cloud Logging and JSON stdout.

Public API: the Dagster loggers and the ``logging`` handlers behind them.
"""

from .handlers import CloudWatchHandler, GcpHandler, JsonStreamHandler
from .loggers import cloudwatch_logger, gcp_logger, json_console_logger
from .shipping import ConfigError, ShippingHandler, ShippingOptions, flush_all

__all__ = [
    "CloudWatchHandler",
    "ConfigError",
    "GcpHandler",
    "JsonStreamHandler",
    "ShippingHandler",
    "ShippingOptions",
    "cloudwatch_logger",
    "flush_all",
    "gcp_logger",
    "json_console_logger",
]

__version__ = "0.1.0"
