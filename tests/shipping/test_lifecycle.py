"""flush and close timing, reopen after close, hosts that close handlers in use, and no leaks."""

from __future__ import annotations

import gc
import logging
import logging.config
import threading
import time
import uuid

from support import MemorySink, wait_until

from dagster_logship.shipping import ShippingHandler, ShippingOptions
from dagster_logship.shipping.lifecycle import registered_workers


def test_flush_returns_false_at_its_timeout_and_true_once_delivered(make_handler, sink):
    sink.gate.clear()
    handler, logger = make_handler()
    logger.info("a")
    start = time.monotonic()
    assert handler.flush(0.2) is False
    elapsed = time.monotonic() - start
    assert 0.2 * 0.9 <= elapsed < 2
    sink.gate.set()
    assert handler.flush(5) is True
    assert sink.messages() == ["a"]


def test_flush_waits_only_for_records_emitted_before_it(make_handler, sink):
    handler, logger = make_handler()
    assert handler.flush(1) is True  # nothing emitted: returns at once
    logger.info("a")
    assert handler.flush(5)
    assert handler.stats["delivered"] == 1


def test_close_is_bounded_and_records_still_ship_afterwards(make_handler, sink):
    sink.gate.clear()
    handler, logger = make_handler(flush_timeout=0.3)
    logger.info("before close")
    start = time.monotonic()
    handler.close()
    assert time.monotonic() - start < 2
    sink.gate.set()
    assert wait_until(lambda: sink.messages() == ["before close"])


def test_emit_after_close_starts_again(make_handler, sink):
    handler, logger = make_handler()
    logger.info("one")
    handler.close()
    assert sink.messages() == ["one"]
    logger.info("two")
    assert handler.flush(5)
    assert sink.messages() == ["one", "two"]
    assert handler.stats["delivered"] == 1  # counters of the new worker


def test_dictconfig_and_logging_shutdown_close_handlers_in_use(make_handler, sink):
    handler, logger = make_handler()
    logger.info("one")
    logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})
    # dictConfig closes handlers while holding logging's lock, which the worker may need, so
    # close does not wait there; the released worker still drains what it holds.
    assert wait_until(lambda: sink.messages() == ["one"])
    logger.info("two")
    logging.shutdown([lambda: handler])  # type: ignore[list-item]
    assert sink.messages() == ["one", "two"]
    logger.info("three")
    assert handler.flush(5)
    assert sink.messages() == ["one", "two", "three"]


def test_handlers_for_one_destination_share_one_worker(sink):
    key = uuid.uuid4().hex
    options = ShippingOptions(flush_interval=60, flush_timeout=5)
    handlers = [ShippingHandler(lambda: sink, key=key, options=options) for _ in range(5)]
    assert len({id(h.worker) for h in handlers}) == 1
    for h in handlers:
        h.close()


def test_building_handlers_again_and_again_leaks_nothing():
    sinks: list[MemorySink] = []

    def factory() -> MemorySink:
        sinks.append(MemorySink())
        sinks[-1].destination = "leak-test"
        return sinks[-1]

    def ours() -> int:
        return sum(1 for t in threading.enumerate() if t.name == "dagster-logship leak-test")

    options = ShippingOptions(flush_interval=0.05, flush_timeout=5)
    most = 0
    for run in range(200):
        handler = ShippingHandler(factory, key="one-destination", options=options)
        logger = logging.Logger(f"run-{run}")
        logger.addHandler(handler)
        logger.info("run %d", run)
        del logger, handler  # as Dagster does: never flushed, never closed
        most = max(most, ours())
    gc.collect()
    registered_workers()  # a safe point: releases queued by garbage collection are applied
    assert wait_until(lambda: all(s.closed for s in sinks), timeout=20)
    assert wait_until(lambda: ours() == 0, timeout=20)
    # A worker ends when its last handler is gone: a few may overlap while they drain (more on a
    # loaded machine), but the number never grows with the number of runs, as a leak would.
    assert most <= 20
    delivered = sorted(item.event["message"] for s in sinks for call in s.calls for item in call)
    assert delivered == sorted(f"run {i}" for i in range(200))


def test_a_subclass_with_its_own_emit_still_has_it_called():
    """handle() inlines our emit for speed; a subclass's emit must not be bypassed."""
    sink = MemorySink()
    seen: list[str] = []

    class Tapping(ShippingHandler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())
            super().emit(record)

    handler = Tapping(lambda: sink, key=uuid.uuid4().hex, options=ShippingOptions())
    logger = logging.Logger("tap")
    logger.addHandler(handler)
    logger.warning("tapped %d", 1)
    assert handler.flush(5)
    assert seen == ["tapped 1"] and sink.messages() == ["tapped 1"]
    handler.close()


def test_a_closed_handler_settles_the_worker_its_destination_uses_now():
    """Dagster builds its loggers again for the steps and closes handlers as it builds each log
    manager: the run's records can sit in a worker that a newer handler of the same destination
    started after this one was closed. The run's end (on this handler) must deliver them."""
    import logging

    from support import MemorySink

    from dagster_logship.shipping import ShippingHandler, ShippingOptions

    sink = MemorySink()
    options = ShippingOptions(flush_interval=60.0, flush_timeout=10.0)
    run_level = ShippingHandler(lambda: sink, "same-destination", options)
    step_level = ShippingHandler(lambda: sink, "same-destination", options)
    run_level.close()
    step_level.close()  # both closed, as dictConfig does
    log = logging.Logger("step")
    log.addHandler(step_level)
    log.info("logged by a step after the handlers were closed")  # starts a new worker
    try:
        assert run_level.settle("the run ended", timeout=10.0)
        assert sink.messages() == ["logged by a step after the handlers were closed"]
    finally:
        step_level.close()
