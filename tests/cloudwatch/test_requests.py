"""The PutLogEvents requests we make obey CloudWatch's rules, checked on the requests themselves.

moto accepts requests AWS would refuse (10,001 events, 2 MB), so every test here inspects what
our client sent (a botocore hook on the real client) rather than trusting moto to complain.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from dagster_logship.sinks.cloudwatch import (
    MAX_BATCH_BYTES,
    MAX_BATCH_EVENTS,
    MAX_EVENT_BYTES,
    CloudWatchSink,
)
from dagster_logship.testing import read_raw_events

DAY_MS = 24 * 3600 * 1000


def check_rules(batches: list[list[dict[str, Any]]], cw: Any) -> None:
    """Every request: ≤ 10,000 events, ≤ 1,048,576 bytes counted CloudWatch's way, sorted,
    spanning ≤ 24 h, no event over the per-event limit."""
    assert batches
    for events in batches:
        assert 1 <= len(events) <= MAX_BATCH_EVENTS
        assert cw.cloudwatch_bytes(events) <= MAX_BATCH_BYTES
        stamps = [event["timestamp"] for event in events]
        assert stamps == sorted(stamps)
        assert stamps[-1] - stamps[0] <= DAY_MS
        for event in events:
            assert 0 < len(event["message"].encode("utf-8")) <= MAX_EVENT_BYTES


def test_declared_limits_are_putlogevents_rules() -> None:
    limits = CloudWatchSink.limits
    assert limits.max_batch_events == 10_000
    assert limits.max_batch_bytes == 1_048_576
    assert limits.per_event_overhead == 26
    # A lone event must still fit a request: 1 MB minus its own 26 bytes.
    assert limits.max_event_bytes == 1_048_576 - 26
    assert limits.max_span_seconds is not None and limits.max_span_seconds < 24 * 3600


def test_10001_events_respect_count_and_byte_limits(logs: Any, make_handler: Any, cw: Any) -> None:
    # A long flush_interval: batches are cut by the limits, not by age.
    handler, logger = make_handler(flush_interval=60.0)
    requests = cw.record_requests(handler)
    for i in range(10_001):
        logger.info("event %05d", i)
    assert handler.flush(30)

    batches = requests.batches()
    check_rules(batches, cw)
    # Each of our schema events is a few hundred bytes, so the byte limit binds before the
    # count limit: at least two requests, every one but the last filled to >= 90 %.
    assert len(batches) >= 2
    for events in batches[:-1]:
        assert cw.cloudwatch_bytes(events) >= 0.9 * MAX_BATCH_BYTES
    assert sum(len(events) for events in batches) == 10_001

    stored = read_raw_events(handler.log_group_name, handler.log_stream_name, client=logs)
    messages = [json.loads(event["message"])["message"] for event in stored]
    assert messages == [f"event {i:05d}" for i in range(10_001)]
    assert handler.stats["delivered"] == 10_001


def test_byte_limit_counts_utf8_bytes_not_characters(
    logs: Any, make_handler: Any, cw: Any
) -> None:
    handler, logger = make_handler(flush_interval=60.0)
    requests = cw.record_requests(handler)
    # "€" is 1 character but 3 UTF-8 bytes: a limit counted in characters would overflow.
    text = "€" * 30_000
    for i in range(40):  # ~3.6 MB in all
        logger.info("%d %s", i, text)
    assert handler.flush(30)

    batches = requests.batches()
    check_rules(batches, cw)
    assert len(batches) >= 4
    assert sum(len(events) for events in batches) == 40
    stored = read_raw_events(handler.log_group_name, handler.log_stream_name, client=logs)
    assert [json.loads(e["message"])["message"].split(" ")[0] for e in stored] == [
        str(i) for i in range(40)
    ]


def _record(logger: logging.Logger, message: str, created: float) -> logging.LogRecord:
    record = logger.makeRecord(logger.name, logging.INFO, __file__, 1, message, (), None)
    record.created = created
    record.msecs = 0.0
    return record


def test_events_sorted_by_timestamp_inside_a_request(
    logs: Any, make_handler: Any, cw: Any
) -> None:
    handler, logger = make_handler(flush_interval=60.0)
    requests = cw.record_requests(handler)
    now = time.time()
    # Emitted out of time order (as threads or re-logged records can be).
    for offset, name in ((0.0, "c"), (-5.0, "a"), (-2.0, "b"), (-2.0, "b2"), (1.0, "d")):
        logger.handle(_record(logger, name, now + offset))
    assert handler.flush(10)

    batches = requests.batches()
    check_rules(batches, cw)
    assert len(batches) == 1
    sent = [json.loads(event["message"])["message"] for event in batches[0]]
    assert sent == ["a", "b", "b2", "c", "d"]  # equal timestamps keep their emit order
    assert handler.stats["delivered"] == 5 and handler.stats["rejected"] == 0


def test_a_request_spans_at_most_24_hours(logs: Any, make_handler: Any, cw: Any) -> None:
    handler, logger = make_handler(flush_interval=60.0)
    requests = cw.record_requests(handler)
    now = time.time()
    # Within the 14 days CloudWatch accepts, but 12 days apart in all.
    offsets_days = [-12, -11.5, -3, -1.01, -0.5, 0]
    for i, days in enumerate(offsets_days):
        logger.handle(_record(logger, f"m{i}", now + days * 86400))
    assert handler.flush(10)

    batches = requests.batches()
    check_rules(batches, cw)
    assert len(batches) >= 4  # {-12, -11.5}, {-3}, {-1.01}, {-0.5, 0}
    stored = read_raw_events(handler.log_group_name, handler.log_stream_name, client=logs)
    assert [json.loads(e["message"])["message"] for e in stored] == [
        f"m{i}" for i in range(len(offsets_days))
    ]


def test_oversized_message_arrives_as_ordered_parts(
    logs: Any, make_handler: Any, cw: Any
) -> None:
    handler, logger = make_handler()
    requests = cw.record_requests(handler)
    big = "".join(f"{i:07d}é" for i in range(300_000))  # ~2.7 MB of UTF-8
    logger.info(big)
    logger.info("after")
    assert handler.flush(30)

    check_rules(requests.batches(), cw)
    stored = [
        json.loads(event["message"])
        for event in read_raw_events(handler.log_group_name, handler.log_stream_name, client=logs)
    ]
    parts = [event for event in stored if "part" in event]
    count = parts[0]["part"]["count"]
    assert count >= 3
    assert [p["part"] for p in parts] == [{"index": i, "count": count} for i in range(1, count + 1)]
    assert "".join(p["message"] for p in parts) == big  # nothing lost, nothing reordered
    assert stored[-1]["message"] == "after"
    assert handler.stats["rejected"] == 0 and handler.stats["spilled"] == 0


def test_oversized_message_truncated_with_a_marker_when_configured(
    logs: Any, make_handler: Any, cw: Any
) -> None:
    handler, logger = make_handler(oversize="truncate")
    requests = cw.record_requests(handler)
    logger.info("y" * 2_000_000)
    assert handler.flush(30)

    check_rules(requests.batches(), cw)
    stored = read_raw_events(handler.log_group_name, handler.log_stream_name, client=logs)
    assert len(stored) == 1
    message = json.loads(stored[0]["message"])["message"]
    assert message.startswith("yyyy") and "truncated" in message
    assert len(stored[0]["message"].encode()) <= MAX_EVENT_BYTES


def test_timestamps_are_record_times_in_milliseconds(
    logs: Any, make_handler: Any, cw: Any
) -> None:
    handler, logger = make_handler()
    requests = cw.record_requests(handler)
    created = 1_700_000_000.123456 + (time.time() - 1_700_000_000) // 1  # now, with a fraction
    logger.handle(_record(logger, "when", created))
    assert handler.flush(10)
    (event,) = requests.batches()[0]
    assert event["timestamp"] == int(created * 1000)
    assert "sequenceToken" not in requests.calls[0]  # ignored by the service since 2023


def test_our_request_body_is_the_json_botocore_would_send(logs: Any, make_handler: Any,
                                                          cw: Any) -> None:
    """The PutLogEvents body the sink writes itself (instead of botocore's serializer) parses
    to exactly what botocore's own serializer makes of the same events, ASCII-escaped alike."""
    from botocore.serialize import create_serializer

    handler, logger = make_handler()
    logger.info("warm up")  # builds the sink's client
    assert handler.flush(10)
    sink = cw.sink_of(handler)
    client = sink.client()
    texts = ['{"message":"plain"}', 'quote " backslash \\ tab \t newline \n nul \x00',
             "é € 😀 中文", "\u2028\u2029 and \x7f", "x" * 5_000]
    all_events = [(1_700_000_000_000 + i, text) for i, text in enumerate(texts)]
    operation = client.meta.service_model.operation_model("PutLogEvents")
    assert json.loads(sink._request_body([]))["logEvents"] == []  # botocore refuses to make one
    for events in (all_events, all_events[:1]):
        ours = sink._request_body(events)
        theirs = create_serializer("json").serialize_to_request(
            {"logGroupName": sink.log_group_name, "logStreamName": sink.log_stream_name,
             "logEvents": [{"timestamp": t, "message": m} for t, m in events]},
            operation,
        )["body"]
        assert ours.isascii() and theirs.isascii()
        assert json.loads(ours) == json.loads(theirs)
        assert len(json.loads(ours)["logEvents"]) == len(events)


def test_if_botocore_skips_our_hook_events_go_through_its_serializer(
    logs: Any, make_handler: Any, cw: Any, capfd: Any
) -> None:
    """Should botocore ever stop calling the before-call hook, the request that went out held
    no events: the same events are sent again through botocore's serializer (once each, in
    order), from then on, with one diagnostic line."""
    handler, logger = make_handler()
    logger.info("first, through our body")
    assert handler.flush(10)
    sink = cw.sink_of(handler)
    sink.client().meta.events.unregister("before-call.*.*", sink._use_prepared_body)
    for i in range(3):
        logger.info("after the hook is gone %d", i)
    assert handler.flush(10)
    logger.info("and later")
    assert handler.flush(10)

    stored = read_raw_events(handler.log_group_name, handler.log_stream_name, client=logs)
    messages = [json.loads(event["message"])["message"] for event in stored]
    assert messages == ["first, through our body"] + [
        f"after the hook is gone {i}" for i in range(3)] + ["and later"]
    assert sink._own_body is False
    assert capfd.readouterr().err.count("did not take the prepared PutLogEvents body") == 1
    assert handler.stats["delivered"] == 5
