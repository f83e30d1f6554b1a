"""Every overflow policy, every drop counted and reported."""

from __future__ import annotations

import threading
import time

from support import wait_until

#: What the worker holds besides the queue while a request hangs: the batch in flight and the
#: next one, already encoded and waiting for it.
HELD = ["m0", "p1", "p2"]


def _stall(handler, logger, sink):
    """m0 in flight with the sink stuck; p1 and p2 encoded and waiting behind it; queue empty."""
    sink.gate.clear()
    logger.info("m0")
    handler.flush(0)  # send it now: it stays in flight while the gate is closed
    assert sink.in_send.wait(5)
    logger.info("p1")
    logger.info("p2")
    handler.flush(0)  # hand them over: they wait for m0
    worker = handler.worker
    assert wait_until(
        lambda: worker.holding() | {"queued_bytes": 0, "in_flight": 0}
        == {"queued": 0, "queued_bytes": 0, "taken": 0, "carry": 0, "pending": [2],
            "in_flight": 0}
    )


def _fill(make_handler, sink, policy, **extra):
    handler, logger = make_handler(queue_max_records=5, overflow=policy, **extra)
    _stall(handler, logger, sink)  # the worker takes nothing more: the queue holds 5
    return handler, logger


def test_drop_newest(make_handler, sink, capfd):
    handler, logger = _fill(make_handler, sink, "drop_newest")
    for i in range(1, 9):
        logger.info("m%d", i)
    sink.gate.set()
    assert handler.flush(5)
    assert sink.messages() == [*HELD, "m1", "m2", "m3", "m4", "m5"]
    assert handler.stats["dropped"] == 3
    assert "dropped 3 record(s)" in capfd.readouterr().err


def test_drop_oldest(make_handler, sink):
    handler, logger = _fill(make_handler, sink, "drop_oldest")
    for i in range(1, 9):
        logger.info("m%d", i)
    sink.gate.set()
    assert handler.flush(5)
    assert sink.messages() == [*HELD, "m4", "m5", "m6", "m7", "m8"]
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
    worker = handler.worker
    assert wait_until(
        lambda: worker.holding()["queued"] == 5 and len(worker.holding()["pending"]) == 1
    )
    assert not done.wait(0.2)  # m6 cannot be enqueued while the queue is full
    sink.gate.set()  # the worker takes a batch, which makes room
    assert done.wait(10)
    thread.join()
    assert handler.flush(5)
    assert sink.messages() == [*HELD] + [f"m{i}" for i in range(1, 7)]
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
    assert sink.messages() == [*HELD] + [f"m{i}" for i in range(1, 6)]


def test_queue_bytes_limit(make_handler, sink):
    handler, logger = make_handler(queue_max_bytes=5000, overflow="drop_newest")
    _stall(handler, logger, sink)
    for _ in range(10):
        logger.info("y" * 1500)
    assert wait_until(lambda: handler.stats["dropped"] > 0)
    sink.gate.set()
    assert handler.flush(5)
    stats = handler.stats
    assert stats["delivered"] + stats["dropped"] == 3 + 10
    assert 3 + 1 <= stats["delivered"] <= 3 + 5000 // 1500
