"""Batches are formed by count, by bytes as the sink counts them, by age and by time span."""

from __future__ import annotations

import json
import logging
import time

from support import MemorySink, wait_until

from dagster_logship.shipping import SinkLimits
from dagster_logship.shipping.sink import SIZE


def test_batches_by_count_without_flush(make_handler, sink):
    handler, logger = make_handler(max_batch_size=10)
    for i in range(25):
        logger.info("m%d", i)
    assert sink.wait_calls(2)  # two full batches go out on their own
    assert [len(c) for c in sink.calls[:2]] == [10, 10]
    assert handler.flush(5)
    assert [len(c) for c in sink.calls] == [10, 10, 5]
    assert sink.messages() == [f"m{i}" for i in range(25)]
    assert handler.stats["delivered"] == 25
    assert handler.stats["enqueued"] == 25


def test_batches_by_bytes_as_the_sink_counts_them(make_handler, sink):
    handler, logger = make_handler(max_batch_bytes=3000)
    for i in range(40):
        logger.info("x" * 200 + str(i))
    assert handler.flush(5)
    sizes = [sum(item.size for item in call) for call in sink.calls]
    assert all(size <= 3000 for size in sizes)
    # each item is its JSON text in UTF-8 plus the sink's declared overhead
    item = sink.calls[0][0]
    assert item.size == len(item.text.encode("utf-8")) + sink.limits.per_event_overhead
    # batches are filled: all but the last hold more than the limit minus one event
    assert all(size > 3000 - item.size for size in sizes[:-1])
    assert len(sink.messages()) == 40


def test_batches_by_age(make_handler, sink):
    _, logger = make_handler(flush_interval=0.3)
    start = time.monotonic()
    logger.info("one")
    logger.info("two")
    assert sink.wait_calls(1)
    waited = time.monotonic() - start
    assert waited >= 0.3 * 0.9
    assert sink.messages() == ["one", "two"]


def test_batch_never_spans_more_than_the_sink_allows(make_handler):
    sink = MemorySink(
        SinkLimits(
            max_batch_events=100,
            max_batch_bytes=100_000,
            max_event_bytes=50_000,
            max_span_seconds=10,
        )
    )
    handler, logger = make_handler(target=sink)
    base = time.time()
    for offset in (0, 5, 9, 11, 30, 31):
        record = logger.makeRecord(logger.name, logging.INFO, __file__, 1, f"t{offset}", (), None)
        record.created = base + offset
        logger.handle(record)
    assert handler.flush(5)
    groups = [[item.event["message"] for item in call] for call in sink.calls]
    assert groups == [["t0", "t5", "t9"], ["t11"], ["t30", "t31"]]


def test_backlog_fills_batches_to_the_limit(make_handler, sink):
    sink.gate.clear()
    handler, logger = make_handler(max_batch_size=50)
    logger.info("first")
    handler.flush(0)  # send it now: it stays in flight while the gate is closed
    assert sink.in_send.wait(5)
    for i in range(500):
        logger.info("b%d", i)
    sink.gate.set()
    assert handler.flush(10)
    sizes = [len(c) for c in sink.calls[1:]]
    assert sum(sizes) == 500
    assert sizes.count(50) == 10


def test_flush_interval_bounds_latency_of_a_partial_batch_after_a_full_one(make_handler, sink):
    handler, logger = make_handler(max_batch_size=10, flush_interval=0.2)
    for i in range(13):
        logger.info("m%d", i)
    assert sink.wait_calls(2, timeout=5)
    assert [len(c) for c in sink.calls] == [10, 3]
    assert wait_until(lambda: handler.stats["delivered"] == 13)


def test_in_a_burst_the_worker_waits_for_a_pause_then_ships_without_a_flush(
    make_handler, sink, monkeypatch
):
    """The worker shares the GIL with the code that logs: in a tight loop it encodes nothing
    until the loop pauses (here for a second), then everything."""
    from dagster_logship.shipping import worker as worker_module

    monkeypatch.setattr(worker_module, "_QUIET", 1.0)
    _, logger = make_handler(max_batch_size=5, flush_interval=60)
    n, end = 0, time.monotonic() + 0.2  # 40 switch intervals: an eager worker would send
    while time.monotonic() < end:
        logger.info("m%d", n)
        n += 1
    assert sink.calls == []  # nothing encoded or sent while they kept coming
    assert wait_until(lambda: len(sink.messages()) >= n - n % 5, timeout=20)  # then all full
    assert sink.messages()[: n - n % 5] == [f"m{i}" for i in range(n - n % 5)]  # batches


def test_a_slow_stream_is_encoded_as_it_comes(make_handler, sink, monkeypatch):
    """Records far apart (a Dagster op's log calls are ~300 us apart) are no burst: full
    batches go out while they keep coming, without waiting for a pause."""
    from dagster_logship.shipping import worker as worker_module

    monkeypatch.setattr(worker_module, "_QUIET", 60.0)
    _, logger = make_handler(max_batch_size=5, flush_interval=60)
    for i in range(10):
        logger.info("m%d", i)
        time.sleep(0.01)
    assert sink.wait_calls(2, timeout=10)
    assert sink.messages() == [f"m{i}" for i in range(10)]


def test_a_half_full_queue_starts_the_worker_even_while_records_keep_coming(
    make_handler, sink, monkeypatch
):
    from dagster_logship.shipping import worker as worker_module

    monkeypatch.setattr(worker_module, "_QUIET", 60.0)
    handler, logger = make_handler(max_batch_size=5, flush_interval=60, queue_max_records=20)
    for i in range(10):  # half of queue_max_records
        logger.info("m%d", i)
    assert sink.wait_calls(1, timeout=10)  # it takes batches until the queue is below half
    assert sink.messages()[:5] == [f"m{i}" for i in range(5)]
    assert handler.flush(5)
    assert sink.messages() == [f"m{i}" for i in range(10)]


def test_a_take_stays_about_one_batch_when_events_are_bigger_than_their_messages(
    make_handler, sink
):
    """What the worker holds outside the queue is bounded by batches: a snapshot's size
    estimate counts its message, not Dagster's tags; the worker learns the difference from what
    it encoded and takes less at a time."""
    handler, logger = make_handler(max_batch_bytes=20_000)
    worker = handler._worker
    taken: list[int] = []
    real_items_of = worker._items_of

    def items_of(snaps, first):
        items = real_items_of(snaps, first)
        taken.append(sum(item[SIZE] for item in items))  # the worker's items: plain tuples
        return items

    worker._items_of = items_of
    tags = {f"tag{i}": "v" * 60 for i in range(40)}  # ~3 KB of tags per event
    meta = {"run_id": "r", "job_name": "j", "step_key": "s", "op_name": "o",
            "log_message_id": "id", "orig_message": "short", "job_tags": tags}
    for _ in range(300):
        logger.info("short", extra={"dagster_meta": meta})
    assert handler.flush(10)
    assert len(sink.messages()) == 300
    assert taken[0] > 3 * 20_000  # the first take, by the estimate: many batches' worth
    assert max(taken[2:]) <= 2 * 20_000  # then about one batch at a time


def test_items_waiting_for_a_batch_are_untracked_by_the_first_young_collection(make_handler):
    """Items kept to fill a batch (at a Dagster op's pace, for a second or more) cost the
    garbage collector nothing after one young collection, and never reach the oldest
    generation, whose collections walk the whole heap."""
    import gc

    from dagster_logship.shipping import snapshot

    handler, logger = make_handler()
    worker = handler._worker
    records: list[logging.LogRecord] = []
    catcher = logging.Handler()
    catcher.emit = records.append  # type: ignore[method-assign]
    logger.removeHandler(handler)
    logger.addHandler(catcher)
    meta = {"run_id": "r", "job_name": "j", "step_key": "s", "op_name": "o",
            "log_message_id": "id", "orig_message": "m", "job_tags": {"team": "data"}}
    logger.info("plain %d", 1)
    logger.info("dagster", extra={"dagster_meta": meta})
    logger.info("extra", extra={"rows": 3})
    snaps = [snapshot(record) for record in records]
    enabled = gc.isenabled()
    gc.disable()
    try:
        items = worker._items_of(snaps, 1)
        assert len(items) == 3 and all(gc.is_tracked(item) for item in items)
        gc.collect(0)
        assert not any(gc.is_tracked(item) for item in items)
    finally:
        if enabled:
            gc.enable()


def test_a_sink_reading_fields_by_name_gets_items_and_one_reading_by_position_tuples(
    make_handler,
):
    from dagster_logship.shipping import Item
    from dagster_logship.shipping.sink import TEXT

    class ByPosition(MemorySink):
        plain_items = True

    by_name, by_position = MemorySink(), ByPosition()
    for sink in (by_name, by_position):
        handler, logger = make_handler(sink)
        logger.info("one")
        logger.info("two")
        assert handler.flush(5)
    assert [type(item) for item in by_name.calls[0]] == [Item, Item]
    assert by_name.messages() == ["one", "two"]
    assert [json.loads(item[TEXT])["message"] for item in by_position.calls[0]] == ["one", "two"]
    assert [type(item) for item in by_position.calls[0]] == [tuple, tuple]


def test_a_subclass_of_our_sink_with_its_own_send_gets_items(make_handler):
    """Our sinks read items by position; a subclass whose send() reads them by name (as
    ``Sink.send`` documents) is handed Item objects, not the worker's tuples."""
    import io

    from dagster_logship.sinks.stream import JsonStreamSink

    seen: list[float] = []

    class Stamped(JsonStreamSink):
        def send(self, items):  # type: ignore[no-untyped-def]
            seen.extend(item.timestamp for item in items)
            return super().send(items)

    out = io.StringIO()
    sink = Stamped(out)
    handler, logger = make_handler(sink)
    logger.info("hello %d", 1)
    assert handler.flush(5)
    assert [json.loads(line)["message"] for line in out.getvalue().splitlines()] == ["hello 1"]
    assert len(seen) == 1 and seen[0] > 0
    assert handler.stats["delivered"] == 1 and handler.stats["spilled"] == 0
    assert not Stamped.plain_items and JsonStreamSink.plain_items


def test_a_send_from_a_mixin_gets_items(make_handler):
    """A send() that a mixin or the instance supplies reads items by name (as ``Sink.send``
    documents), even on one of our sinks, which read them by position."""
    import io

    from dagster_logship.shipping.sink import takes_plain_items
    from dagster_logship.sinks.stream import JsonStreamSink

    seen: list[str] = []

    class StampMixin:
        def send(self, items):  # type: ignore[no-untyped-def]
            seen.extend(item.text for item in items)  # by name: an Item, not a tuple
            return super().send(items)  # type: ignore[misc]

    class Stamped(StampMixin, JsonStreamSink):
        pass

    assert Stamped.plain_items  # inherited: the attribute alone would say tuples
    assert not takes_plain_items(Stamped(io.StringIO()))
    assert takes_plain_items(JsonStreamSink(io.StringIO()))
    patched = JsonStreamSink(io.StringIO())
    patched.send = lambda items: None  # type: ignore[method-assign]
    assert not takes_plain_items(patched)

    out = io.StringIO()
    handler, logger = make_handler(Stamped(out))
    logger.info("hello %d", 1)
    assert handler.flush(5)
    assert [json.loads(text)["message"] for text in seen] == ["hello 1"]
    assert [json.loads(line)["message"] for line in out.getvalue().splitlines()] == ["hello 1"]
    assert handler.stats["delivered"] == 1 and handler.stats["spilled"] == 0


def test_a_backlog_older_than_flush_interval_still_fills_every_request(make_handler):
    """Under a backlog every record is older than ``flush_interval``: that must not make each
    take's partial tail go out at once (it did: 68-75% fill, ~45% more requests against the
    account's quota). 50,000 multi-byte records from four threads, held back by a busy service
    until they are all queued: every request but the last is full (95% of the bytes)."""
    import threading

    limits = SinkLimits(max_batch_events=10_000, max_batch_bytes=60_000,
                        max_event_bytes=50_000, per_event_overhead=26)
    service = MemorySink(limits)
    service.gate.clear()
    handler, logger = make_handler(service, flush_interval=0.01, flush_timeout=60.0)
    logger.info("first")
    handler.flush(0)
    assert service.in_send.wait(5)  # in flight, held: everything after it queues up

    def log_many(n: int) -> None:
        for i in range(12_500):
            logger.info("thread %d record %d: %s", n, i, "é€ü" * (i % 40))

    threads = [threading.Thread(target=log_many, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    service.gate.set()
    assert handler.flush(60)
    calls = service.calls[1:]
    assert sum(len(call) for call in calls) == 50_000
    fills = [sum(item.size for item in call) / limits.max_batch_bytes for call in calls]
    # The worker may take what the threads had logged before they were well under way, with
    # nothing more queued yet, and send it as due: one partial request at the start, and one at
    # the end (the rest). Every other request is full.
    assert min(fills[1:-1]) >= 0.95, sorted(fills)[:5]
