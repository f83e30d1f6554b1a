"""A fourth destination, written only against the ``Sink`` protocol (``shipping/sink.py``).

``LineService`` stands for a service that takes at most three lines a request and answers per
line; ``LineSink`` is all a newcomer writes to ship to it: limits, a payload, send, close and
the names of the SDK loggers it sends through. Everything else (queue, batching, retries,
spill, the recursion guard) is the core's, used through the public ``ShippingHandler``.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Sequence
from typing import Any

from support import wait_until

from dagster_logship.shipping import (
    ItemTuple,
    RetryableError,
    SendResult,
    ShippingHandler,
    ShippingOptions,
    Sink,
    SinkLimits,
    build_event,
    read_spill,
)
from dagster_logship.shipping.sink import PAYLOAD


class LineService:
    """The remote end: keeps what it accepted; ``answers`` script the next replies."""

    def __init__(self) -> None:
        self.requests: list[list[str]] = []
        self.answers: list[Any] = []
        self.lock = threading.Lock()

    def write(self, lines: list[str]) -> Any:
        with self.lock:
            self.requests.append(lines)
            return self.answers.pop(0) if self.answers else None

    def accepted(self) -> list[str]:
        return [line for request in self.requests for line in request]


class LineSink(Sink):
    limits = SinkLimits(max_batch_events=3, max_batch_bytes=10_000, max_event_bytes=2_000)
    destination = "lines"
    sdk_loggers = ("linesdk",)

    def __init__(self, service: LineService) -> None:
        self.service = service
        self.closed = 0
        self.events_given: list[bool] = []

    def payload(self, text: str, event: dict[str, Any] | None, snap: Any) -> Any:
        self.events_given.append(event is not None)
        fields = event if event is not None else build_event(snap)
        return f"{fields['level']} {fields['message']}"

    def send(self, items: Sequence[ItemTuple]) -> SendResult | None:
        logging.getLogger("linesdk.http").info("POST /lines (%d)", len(items))
        answer = self.service.write([item[PAYLOAD] for item in items])
        if isinstance(answer, Exception):
            raise answer
        return answer

    def close(self) -> None:
        self.closed += 1


def _handler(sink: LineSink, tmp_path: Any, **options: Any) -> tuple[ShippingHandler, Any]:
    options.setdefault("flush_interval", 60.0)
    options.setdefault("retry_initial_backoff", 0.01)
    options.setdefault("retry_max_backoff", 0.02)
    handler = ShippingHandler(
        lambda: sink,
        key=uuid.uuid4().hex,
        options=ShippingOptions(spill_path=str(tmp_path / "spill.jsonl"), **options),
    )
    logger = logging.Logger(f"app-{uuid.uuid4().hex[:8]}", level=logging.DEBUG)
    logger.addHandler(handler)
    return handler, logger


def test_records_arrive_in_order_in_requests_within_the_sinks_limits(tmp_path):
    service = LineService()
    sink = LineSink(service)
    handler, logger = _handler(sink, tmp_path)
    for i in range(7):
        logger.info("record %d", i)
    logger.warning("with an extra", extra={"rows": 3})
    assert handler.flush(5)
    assert service.accepted() == [f"INFO record {i}" for i in range(7)] + [
        "WARNING with an extra"
    ]
    assert [len(request) for request in service.requests] == [3, 3, 2]
    # the plain records' text was written from their snapshots; the one with an extra was built
    assert sink.events_given == [False] * 7 + [True]
    assert handler.stats["delivered"] == 8
    handler.close()  # the last handler lets go: the worker stops and closes the sink
    assert wait_until(lambda: sink.closed == 1)


def test_per_line_answers_resend_the_failed_and_spill_the_refused(tmp_path):
    service = LineService()
    service.answers = [SendResult(rejected=[(1, "too spicy")], retry=[2]), None]
    sink = LineSink(service)
    handler, logger = _handler(sink, tmp_path)
    for name in ("a", "b", "c"):
        logger.info(name)
    assert handler.flush(5)
    assert service.requests == [["INFO a", "INFO b", "INFO c"], ["INFO c"]]
    spilled = list(read_spill(tmp_path / "spill.jsonl"))
    assert [(e["message"], e["logship_spill"]["reason"]) for e in spilled] == [
        ("b", "rejected by service: too spicy")
    ]
    assert handler.stats["delivered"] == 2 and handler.stats["rejected"] == 1
    handler.close()


def test_a_service_down_longer_than_the_retry_deadline_spills_the_batch(tmp_path):
    service = LineService()
    service.answers = [RetryableError("503")] * 100
    sink = LineSink(service)
    handler, logger = _handler(sink, tmp_path, retry_deadline=0.2)
    logger.info("lost?")
    assert handler.flush(5)
    spilled = list(read_spill(tmp_path / "spill.jsonl"))
    assert [e["message"] for e in spilled] == ["lost?"]
    assert spilled[0]["logship_spill"]["reason"].startswith("retries exhausted")
    assert len(service.requests) > 1  # retried before giving up
    handler.close()


def test_the_sdks_records_made_while_sending_reach_no_handler(tmp_path):
    """The sink names its SDK's loggers; their records made on our threads are dropped at the
    logger, and the application's own use of that SDK is untouched."""
    seen: list[str] = []
    catcher = logging.Handler()
    catcher.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    sdk = logging.getLogger("linesdk.http")
    sdk.setLevel(logging.INFO)
    sdk.addHandler(catcher)
    try:
        service = LineService()
        handler, logger = _handler(LineSink(service), tmp_path)
        logger.info("one")
        assert handler.flush(5)
        logger.info("two")
        assert handler.flush(5)
        sdk.info("the application's own request")
        assert service.accepted() == ["INFO one", "INFO two"]
        assert seen == ["the application's own request"]
        handler.close()
    finally:
        sdk.removeHandler(catcher)
