"""Fixtures for the shipping core's unit tests."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from support import MemorySink

from dagster_logship.dagster_records import dagster_snapshot
from dagster_logship.shipping import ShippingHandler, ShippingOptions


@pytest.fixture
def sink() -> MemorySink:
    return MemorySink()


@pytest.fixture
def make_handler(
    sink: MemorySink,
) -> Iterator[Callable[..., tuple[ShippingHandler, logging.Logger]]]:
    """A handler on a fresh logger, shipping to ``sink`` with its own worker; it reads Dagster's
    metadata off records as our handlers do."""
    made: list[ShippingHandler] = []

    def make(
        target: MemorySink | None = None, **options: Any
    ) -> tuple[ShippingHandler, logging.Logger]:
        options.setdefault("flush_interval", 60.0)
        options.setdefault("flush_timeout", 5.0)
        options.setdefault("retry_initial_backoff", 0.01)
        options.setdefault("retry_max_backoff", 0.05)
        use = target or sink
        handler = ShippingHandler(
            lambda: use,
            key=uuid.uuid4().hex,
            options=ShippingOptions(**options),
            snapshot_record=dagster_snapshot,
        )
        logger = logging.Logger(f"test-{uuid.uuid4().hex[:8]}", level=logging.DEBUG)
        logger.addHandler(handler)
        made.append(handler)
        return handler, logger

    yield make
    sink.gate.set()
    for handler in made:
        handler.close()
