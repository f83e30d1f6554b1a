"""Batches are formed by count, by bytes as the sink counts them, by age and by time span."""

from __future__ import annotations

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
    from dagster_logship.shipping.burst import BurstGate

    monkeypatch.setattr(BurstGate, "quiet", 1.0)
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
    from dagster_logship.shipping.burst import BurstGate

    monkeypatch.setattr(BurstGate, "quiet", 60.0)
    _, logger = make_handler(max_batch_size=5, flush_interval=60)
    for i in range(10):
        logger.info("m%d", i)
        time.sleep(0.01)
    assert sink.wait_calls(2, timeout=10)
    assert sink.messages() == [f"m{i}" for i in range(10)]


def test_a_half_full_queue_starts_the_worker_even_while_records_keep_coming(
    make_handler, sink, monkeypatch
):
    from dagster_logship.shipping.burst import BurstGate

    monkeypatch.setattr(BurstGate, "quiet", 60.0)
    handler, logger = make_handler(max_batch_size=5, flush_interval=60, queue_max_records=20)
    for i in range(10):  # half of queue_max_records
        logger.info("m%d", i)
    assert sink.wait_calls(1, timeout=10)  # it takes batches until the queue is below half
    assert sink.messages()[:5] == [f"m{i}" for i in range(5)]
    assert handler.flush(5)
    assert sink.messages() == [f"m{i}" for i in range(10)]


def test_a_take_stays_about_one_batch_when_events_are_bigger_than_their_messages(
    make_handler, sink, monkeypatch
):
    """What the worker holds outside the queue is bounded by batches: a snapshot's size
    estimate counts its message, not Dagster's tags; the worker learns the difference from what
    it encoded and takes less at a time."""
    from dagster_logship.shipping import batcher, batching

    handler, logger = make_handler(max_batch_bytes=20_000)
    taken: list[int] = []

    def encode_items(*args, **kwargs):
        items, split = batching.encode_items(*args, **kwargs)
        taken.append(sum(item[SIZE] for item in items))
        return items, split

    monkeypatch.setattr(batcher, "encode_items", encode_items)
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

    from dagster_logship.dagster_records import dagster_snapshot as snapshot
    from dagster_logship.shipping.batching import encode_items

    handler, logger = make_handler()
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
        items, _ = encode_items(MemorySink(), snaps, 1, 50_000, "split")
        assert len(items) == 3 and all(gc.is_tracked(item) for item in items)
        gc.collect(0)
        assert not any(gc.is_tracked(item) for item in items)
    finally:
        if enabled:
            gc.enable()


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


def test_records_out_of_time_order_are_sorted_before_a_span_cuts_them():
    """Records from several threads spread over three days, arriving in no time order: sorted
    within the take, they fill four requests at most, not one per step back in time."""
    import random

    from dagster_logship.shipping.batching import cut

    rng = random.Random(3)
    day = 86_400
    stamps = [1.7e9 + rng.uniform(0, 3 * day) for _ in range(2_300)]
    items = [("{}", None, 100, ts, seq) for seq, ts in enumerate(stamps, 1)]
    batches = cut(None, list(items), 10_000, 1_048_576, day)
    assert len(batches) <= 4
    assert sorted(item[4] for batch in batches for item in batch.items) == list(range(1, 2_301))
    for batch in batches:
        times = [item[3] for item in batch.items]
        assert times == sorted(times) and times[-1] - times[0] <= day
        assert batch.first_seq == min(item[4] for item in batch.items)


def test_a_flush_waits_for_records_sorted_behind_later_ones(make_handler):
    """Sorting puts a record's sequence number anywhere in its batch: a flush still returns
    only once every record is delivered, and every one is, once."""
    import random

    rng = random.Random(5)
    service = MemorySink(SinkLimits(max_batch_events=50, max_batch_bytes=100_000,
                                    max_event_bytes=50_000, max_span_seconds=3_600))
    handler, logger = make_handler(service)
    for i in range(400):
        record = logger.makeRecord(logger.name, logging.INFO, __file__, 1, "r%d", (i,), None)
        record.created = 1.7e9 + rng.uniform(0, 4 * 3_600)
        logger.handle(record)
    assert handler.flush(10)
    assert sorted(service.messages(), key=lambda m: int(m[1:])) == [f"r{i}" for i in range(400)]
    assert len(service.messages()) == 400
    for call in service.calls:
        assert [item.timestamp for item in call] == sorted(item.timestamp for item in call)
        assert call[-1].timestamp - call[0].timestamp <= 3_600
