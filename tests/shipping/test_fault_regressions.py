"""Regression tests for what the fault-injection suite (integration_tests/faults) found in the
shipping core, each reduced to a deterministic unit test."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc
from collections import deque

import pytest
from support import MemorySink

from dagster_logship.dagster_records import dagster_snapshot
from dagster_logship.shipping import RetryableError, read_spill, snapshot
from dagster_logship.shipping.recursion import in_shipping_thread
from dagster_logship.shipping.snapshots import MEM


def test_exit_waits_for_the_worker_to_finish_writing_a_batch_it_spills(make_handler, sink,
                                                                       tmp_path):
    """The batch stays visible to the exiting thread until its spill lines are written: a
    process used to end with the batch neither delivered nor spilled."""
    spill = tmp_path / "spill.jsonl"
    handler, logger = make_handler(spill_path=str(spill), flush_interval=0.01,
                                   retry_deadline=600)
    worker = handler.worker
    sink.on_send = lambda items: (_ for _ in ()).throw(RetryableError("down"))
    real_write = worker.spill.write
    writing = threading.Event()

    def slow_write(events):
        if in_shipping_thread():  # the worker's own thread, spilling what it could not send
            writing.set()
            threading.Event().wait(0.3)  # a slow disk, or an encoder starved of the GIL
        return real_write(events)

    worker.spill.write = slow_write
    for i in range(10):
        logger.info("r%d", i)
    assert sink.in_send.wait(5)
    # What shutdown_all does at process exit, with the worker caught writing its spill.
    deadline = time.monotonic() + 0.05
    target = worker.begin_exit(deadline)
    assert writing.wait(10)
    assert not worker.wait_done(target, deadline)
    worker.abandon_now("process exiting")
    # The process would end right here: every record must already be in the file, once.
    assert sorted(e["message"] for e in read_spill(spill)) == sorted(f"r{i}" for i in range(10))
    worker.end_exit()


def test_a_record_put_as_the_worker_thread_stops_gets_a_thread(make_handler, sink):
    """A put between the thread deciding to stop and it ending used to strand the record."""
    handler, logger = make_handler()
    worker = handler.worker
    logger.info("first")
    assert handler.flush(5)
    real_take = worker.batcher._take  # the worker thread's own step: no public seam
    late = logging.LogRecord("t", logging.INFO, __file__, 1, "late", (), None)
    injected: list[bool] = []

    def take():
        result = real_take()
        if result[-1] and not injected:  # (snaps, first, force, stop): about to end...
            injected.append(True)
            worker.put(snapshot(late))  # ...and another thread emits through the handler
        return result

    worker.batcher._take = take  # type: ignore[method-assign]
    worker.stop()
    assert sink.wait_calls(2, timeout=5)  # delivered without anyone flushing
    assert sink.messages() == ["first", "late"]


def test_batches_after_throttling_are_paced_then_relax(make_handler, sink):
    handler, logger = make_handler(retry_initial_backoff=0.01, retry_max_backoff=0.05)
    worker = handler.worker
    paces = []
    for throttled in (2, 1, 3, 1, 0, 0, 0, 0, 0):
        sink.script.extend([RetryableError("ThrottlingException")] * throttled)
        logger.info("batch")
        assert handler.flush(5)
        paces.append(worker.delivery.pace)
    assert paces[:4] == [0.01, 0.02, 0.04, 0.05]  # doubles after retried batches, capped
    assert paces[4] < paces[3] and paces[-1] == 0.0  # halves after clean ones, back to none
    assert handler.stats["delivered"] == 9


def test_the_queue_bound_counts_the_memory_a_record_holds(make_handler):
    """A small record holds about 440 bytes while queued (the snapshot tuple, its strings, the
    queue entry), not the ~290 of its text and batch overhead: queue_max_bytes bounds real
    memory."""
    blocked = MemorySink()
    blocked.gate.clear()  # the first batch never finishes: everything else stays queued
    handler, logger = make_handler(blocked, queue_max_bytes=20_000, overflow="drop_newest",
                                   flush_interval=0.01, max_batch_size=1)
    logger.info("first")
    assert blocked.in_send.wait(5)
    for i in range(100):
        logger.info("record number %d of a short test", i)
    stats = handler.stats
    assert 1 + 36 <= stats["enqueued"] <= 1 + 46  # 20,000 bytes / ~480 counted per record
    assert stats["dropped"] == 101 - stats["enqueued"]
    worker = handler.worker
    assert 15_000 <= worker.holding()["queued_bytes"] <= 20_000
    blocked.gate.set()


@pytest.mark.parametrize("kind", ["plain", "dagster", "extras"])
def test_counted_queue_memory_matches_what_python_allocates(kind):
    """Snapshot[MEM] against tracemalloc for 5,000 snapshots queued as the worker queues them
    (the snapshot itself in a deque): counted within -5 %/+30 % of what was really allocated
    (tracemalloc sees requested sizes, not the allocator's rounding; a %-format string is
    counted though it is usually the program's own constant), so queue_max_bytes is neither a
    loose nor a false bound."""
    meta = {"run_id": "3f0c2a4e-8d2b-4f7e-9a51-6b0f1c2d3e4f", "job_name": "etl",
            "step_key": "load", "op_name": "load", "orig_message": None,
            "log_message_id": "0b7f7c1e-2f1d-4c3b", "job_tags": {"team": "data"}}
    made: list = []
    logger = logging.Logger("mem", logging.INFO)

    class Keep(logging.Handler):
        def emit(self, record):
            made.append(dagster_snapshot(record))

    logger.addHandler(Keep())
    queue: deque = deque()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(5_000):
            if kind == "plain":
                logger.info("record number %d of a short test", i)
            elif kind == "dagster":
                # as Dagster makes them: a message and a message id of its own per record
                extra = {"dagster_meta": dict(meta, orig_message=f"row {i}",
                                              log_message_id=f"0b7f7c1e-2f1d-4c3b-{i:017d}")}
                logger.info("row %d", i, extra=extra)
            else:
                logger.info("record %d", i, extra={"table": f"orders_{i}", "rows": i * 1000})
            queue.append(made.pop())
        allocated = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    counted = sum(snap[MEM] for snap in queue)
    assert 0.95 * allocated <= counted <= 1.3 * allocated, (counted, allocated)


PIN_SCRIPT = """
import io, logging, os, sys, tempfile
from dagster_logship import JsonStreamHandler

handler = JsonStreamHandler(stream="stdout", flush_interval=60)
logger = logging.Logger("pin", logging.INFO)
logger.addHandler(handler)
fd, path = tempfile.mkstemp()
saved = os.dup(1)
sys.stdout.flush()
os.dup2(fd, 1)  # what Dagster's compute-log capture does for the length of a step
logger.warning("during an fd-level capture")
assert handler.flush(5)
print("printed during the capture")
sys.stdout.flush()
os.dup2(saved, 1)
buffer, real = io.StringIO(), sys.stdout
sys.stdout = buffer  # a Python-level replacement (pytest, contextlib.redirect_stdout): followed
logger.warning("to the replacement")
assert handler.flush(5)
sys.stdout = real
captured = open(path).read()
print("capture file:", "fd-level" in captured, "printed" in captured)
print("replacement:", "to the replacement" in buffer.getvalue())
"""


def test_a_descriptor_redirected_under_sys_stdout_is_bypassed():
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(PIN_SCRIPT)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any('"message":"during an fd-level capture"' in line for line in lines)
    assert "capture file: False True" in lines  # our line went to the real stdout
    assert "replacement: True" in lines
