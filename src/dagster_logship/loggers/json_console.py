"""``json_console_logger``: a drop-in for Dagster's, writing the one event schema."""

from __future__ import annotations

import logging

from dagster import Field, InitLoggerContext, StringSource, logger

from ..handlers.stream import JsonStreamHandler
from ._config import build_logger, common_schema, shipping_kwargs, shipping_schema

__all__ = ["json_console_logger"]


@logger(
    config_schema={
        **common_schema(),
        "stream": Field(
            StringSource, is_required=False, default_value="stdout", description="stdout or stderr."
        ),
        "format": Field(
            StringSource,
            is_required=False,
            default_value="json",
            description="json (the event schema), gcp (adds the keys Google's "
            "agents read from stdout on GKE and Cloud Run) or dagster (the lines of Dagster's "
            "own json_console_logger; with stream: stderr, a drop-in for it).",
        ),
        **shipping_schema(),
    },
    description="One JSON object per line on stdout (or stderr), never blocking the op.",
)
def json_console_logger(init_context: InitLoggerContext) -> logging.Logger:
    config = init_context.logger_config
    handler = JsonStreamHandler(
        stream=config["stream"], format=config["format"], **shipping_kwargs(config)
    )
    # format: dagster sets a formatter, so every call takes logging's own path and makes the
    # record Dagster's logger would (caller fields included: see _relay.py).
    return build_logger(config["name"], config["log_level"], handler)
