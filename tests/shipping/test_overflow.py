"""Every overflow policy, every drop counted and reported."""

from __future__ import annotations

import threading
import time

from support import wait_until


def _fill(make_handler, sink, policy, **extra):
    sink.gate.clear()
    handler, logger = make_handler(queue_max_records=5, overflow=policy, **extra)
    logger.info("m0")
    handler.flush(0)  # send it now: it stays in flight while the gate is closed
    assert sink.in_send.wait(5)  # m0 is in flight; the queue is empty and holds 5
    return handler, logger


def test_drop_newest(make_handler, sink, capfd):
    handler, logger = _fill(make_handler, sink, "drop_newest")
    for i in range(1, 9):
        logger.info("m%d", i)
    sink.gate.set()
    assert handler.flush(5)
    assert sink.messages() == ["m0", "m1", "m2", "m3", "m4", "m5"]
    assert handler.stats["dropped"] == 3
    assert "dropped 3 record(s)" in capfd.readouterr().err


def test_drop_oldest(make_handler, sink):
    handler, logger = _fill(make_handler, sink, "drop_oldest")
    for i in range(1, 9):
        logger.info("m%d", i)
    sink.gate.set()
    assert handler.flush(5)
    assert sink.messages() == ["m0", "m4", "m5", "m6", "m7", "m8"]
    assert handler.stats["dropped"] == 3


def test_block_waits_for_room(make_handler, sink):
    handler, logger = _fill(make_handler, sink, "block", block_timeout=30)
    for i in range(1, 6):
        logger.info("m%d", i)
    done = threading.Event()

    def log_one_more() -> None:
        logger.info("m6")
        done.set()

    thread = threading.Thread(target=log_one_more)
    thread.start()
    worker = handler._worker
    assert wait_until(lambda: worker._waiting is False and len(worker._queue) == 5)
    assert not done.is_set()  # m6 cannot be enqueued while the queue is full
    sink.gate.set()  # the worker takes a batch, which makes room
    assert done.wait(10)
    thread.join()
    assert handler.flush(5)
    assert sink.messages() == [f"m{i}" for i in range(7)]
    assert handler.stats["dropped"] == 0


def test_block_gives_up_after_block_timeout(make_handler, sink):
    handler, logger = _fill(make_handler, sink, "block", block_timeout=0.2)
    for i in range(1, 6):
        logger.info("m%d", i)
    start = time.monotonic()
    logger.info("m6")
    assert time.monotonic() - start >= 0.2 * 0.9
    assert handler.stats["dropped"] == 1
    sink.gate.set()
    assert handler.flush(5)
    assert sink.messages() == [f"m{i}" for i in range(6)]


def test_queue_bytes_limit(make_handler, sink):
    sink.gate.clear()
    handler, logger = make_handler(queue_max_bytes=5000, overflow="drop_newest")
    logger.info("first")
    handler.flush(0)  # send it now: it stays in flight while the gate is closed
    assert sink.in_send.wait(5)
    for _ in range(10):
        logger.info("y" * 1500)
    assert wait_until(lambda: handler.stats["dropped"] > 0)
    sink.gate.set()
    assert handler.flush(5)
    stats = handler.stats
    assert stats["delivered"] + stats["dropped"] == 11
    assert stats["delivered"] <= 1 + 5000 // 1500
