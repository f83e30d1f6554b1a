"""``JsonStreamHandler``: one JSON object per line on stdout or stderr, shipped by the core."""

from __future__ import annotations

import logging
from typing import IO, Any

from ..shipping.handler import ShippingHandler
from ..shipping.options import ShippingOptions
from ..shipping.remote import SinkSpec
from ..sinks.stream import JsonStreamSink

__all__ = ["JsonStreamHandler"]


class JsonStreamHandler(ShippingHandler):
    """JSON lines on ``stream`` ("stdout", "stderr" or a text stream) in ``format`` json or gcp.

    Accepts every shared shipping key (``flush_interval``, ``queue_max_records``, ``overflow``,
    ``retry_deadline``, ``flush_timeout``, ``spill_path``...) as a keyword.
    """

    def __init__(
        self,
        stream: str | IO[str] = "stdout",
        format: str = "json",
        level: int | str = logging.NOTSET,
        **shipping: Any,
    ) -> None:
        options, unknown = ShippingOptions.pick(shipping)
        if unknown:
            raise TypeError(
                f"unknown keyword(s) for JsonStreamHandler: {', '.join(sorted(unknown))}"
            )
        JsonStreamSink(stream, format)  # validate now, not in the worker
        key = ("stream", stream if isinstance(stream, str) else id(stream), format)
        # In a helper process (shipper: process) the named stream is the descriptor this
        # process writes to, handed over when the helper starts.
        spec = (
            SinkSpec("dagster_logship.sinks.stream", "JsonStreamSink", (stream, format))
            if isinstance(stream, str)
            else None
        )
        super().__init__(
            lambda: JsonStreamSink(stream, format), key, options, level, sink_spec=spec
        )
