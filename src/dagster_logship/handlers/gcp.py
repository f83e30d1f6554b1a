"""``GcpHandler``: records to Google Cloud Logging through the shipping layer, Dagster or not."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ..dagster_records import dagster_snapshot
from ..shipping.handler import ShippingHandler
from ..shipping.options import ShippingOptions
from ..sinks.gcp import GcpSink, GcpTarget, require_sdk

__all__ = ["GcpHandler"]


class GcpHandler(ShippingHandler):
    """Ships records as Cloud Logging entries to ``projects/{project}/logs/{log_name}``.

    The keywords are the ``gcp_logger`` config keys, so a ``logging.config.dictConfig`` block (or
    dagster.yaml ``python_logs.dagster_handler_config``) reads like the run config. ``project``
    defaults to the one of the environment's credentials, resolved at the first send: building
    the handler does no network I/O. With ``api_endpoint`` (a local fake server or an emulator)
    anonymous credentials are used. Accepts every shared shipping key (``flush_interval``,
    ``queue_max_records``, ``overflow``, ``retry_deadline``, ``flush_timeout``, ``spill_path``...).
    Raises :class:`~dagster_logship.ConfigError` naming the key for a bad value, and
    ``ImportError`` when google-cloud-logging is not installed.
    """

    snapshot_record = staticmethod(dagster_snapshot)  # Dagster's metadata: schema fields

    def __init__(
        self,
        project: str | None = None,
        log_name: str = "dagster",
        labels: Mapping[str, str] | None = None,
        resource_type: str = "global",
        resource_labels: Mapping[str, str] | None = None,
        api_endpoint: str | None = None,
        level: int | str = logging.NOTSET,
        **shipping: Any,
    ) -> None:
        options, unknown = ShippingOptions.pick(shipping)
        if unknown:
            raise TypeError(f"unknown keyword(s) for GcpHandler: {', '.join(sorted(unknown))}")
        target = GcpTarget.of(
            project=project,
            log_name=log_name,
            labels=labels,
            resource_type=resource_type,
            resource_labels=resource_labels,
            api_endpoint=api_endpoint,
        )
        require_sdk()
        self.target = target
        super().__init__(lambda: GcpSink(target), ("gcp", target), options, level)
