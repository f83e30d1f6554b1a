"""Dagster ``@logger`` definitions: thin translations of run config into handlers."""

from .cloudwatch import cloudwatch_logger
from .gcp import gcp_logger
from .json_console import json_console_logger

__all__ = ["cloudwatch_logger", "gcp_logger", "json_console_logger"]
