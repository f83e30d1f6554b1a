"""Dagster ``@logger`` definitions: thin translations of run config into handlers."""

from .json_console import json_console_logger

__all__ = ["json_console_logger"]
