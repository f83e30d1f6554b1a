"""Ship Dagster logs to CloudWatch Logs, Google Cloud Logging and JSON stdout.

Public API: the Dagster loggers and the ``logging`` handlers behind them.
"""

from .compute_logs import CloudWatchComputeLogManager, GcpComputeLogManager
from .handlers import CloudWatchHandler, GcpHandler, JsonStreamHandler
from .loggers import cloudwatch_logger, gcp_logger, json_console_logger
from .selection import (
    LoggerProblem,
    LoggersNotActiveError,
    assert_loggers_active,
    logger_check_sensor,
    loggers_run_config,
    validate_loggers,
    with_active_loggers,
)
from .shipping import ConfigError, ShippingHandler, ShippingOptions, flush_all
from .sinks.cloudwatch import DestinationCheckError

__all__ = [
    "CloudWatchComputeLogManager",
    "CloudWatchHandler",
    "ConfigError",
    "DestinationCheckError",
    "GcpComputeLogManager",
    "GcpHandler",
    "JsonStreamHandler",
    "LoggerProblem",
    "LoggersNotActiveError",
    "ShippingHandler",
    "ShippingOptions",
    "assert_loggers_active",
    "cloudwatch_logger",
    "flush_all",
    "gcp_logger",
    "json_console_logger",
    "logger_check_sensor",
    "loggers_run_config",
    "validate_loggers",
    "with_active_loggers",
]

__version__ = "0.1.0"
