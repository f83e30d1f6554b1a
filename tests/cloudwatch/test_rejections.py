"""rejectedLogEventsInfo: too-old, too-new and expired events are counted and spilled, the rest
counts as delivered, and indices map back to the caller's order after our sort.

moto reports rejected indices differently from AWS (it sets ``tooOldLogEventEndIndex`` to the
last too-old index, inclusive, where AWS documents it as exclusive), so to test *our* index math
these tests stub the real client's ``put_log_events`` answer with botocore's ``Stubber``, which
also validates our request and the stubbed response against the service model.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from botocore.stub import Stubber

from dagster_logship.shipping import ItemTuple, read_spill
from dagster_logship.sinks.cloudwatch import CloudWatchSink, rejection_reasons


@pytest.mark.parametrize(
    ("info", "expected"),
    [
        ({}, [None] * 5),
        ({"tooOldLogEventEndIndex": 2}, ["too old", "too old", None, None, None]),
        ({"tooNewLogEventStartIndex": 3}, [None, None, None, "too new", "too new"]),
        ({"expiredLogEventEndIndex": 1}, ["expired", None, None, None, None]),
        (
            {"expiredLogEventEndIndex": 1, "tooOldLogEventEndIndex": 2,
             "tooNewLogEventStartIndex": 4},
            ["expired", "too old", None, None, "too new"],
        ),
        ({"tooOldLogEventEndIndex": 0, "tooNewLogEventStartIndex": 5}, [None] * 5),
        ({"tooOldLogEventEndIndex": 99}, ["too old"] * 5),  # clamped, never out of range
    ],
)
def test_rejection_index_math(info: dict[str, int], expected: list[str | None]) -> None:
    assert list(rejection_reasons(info, 5)) == expected


def _item(message: str, created: float, seq: int) -> ItemTuple:
    return (json.dumps({"message": message}), None, 0, created, seq)


_DAY, _HOUR = 86400, 3600


@pytest.mark.parametrize(
    ("offsets", "info", "expected"),
    [
        # Caller order is not time order: after sorting, "old1" and "old2" come first, "new" last.
        (
            {"mid": 0, "new": 3 * _HOUR, "old2": -15 * _DAY, "old1": -16 * _DAY, "mid2": 1},
            {"tooOldLogEventEndIndex": 2, "tooNewLogEventStartIndex": 4},
            [(1, "too new"), (2, "too old"), (3, "too old")],
        ),
        # The usual batch is already in time order and is sent as it is: indices map as they are.
        (
            {"old": -16 * _DAY, "mid": 0, "mid2": 1, "new": 3 * _HOUR},
            {"tooOldLogEventEndIndex": 1, "tooNewLogEventStartIndex": 3},
            [(0, "too old"), (3, "too new")],
        ),
    ],
    ids=["reordered", "in-order"],
)
def test_rejected_indices_map_back_to_caller_order(
    logs: Any, offsets: dict[str, float], info: dict[str, int], expected: list[Any]
) -> None:
    sink = CloudWatchSink("/test/rejections", "s", aws_region="us-east-1")
    now = time.time()
    items = [_item(name, now + off, seq) for seq, (name, off) in enumerate(offsets.items(), 1)]
    client = sink.client()
    with Stubber(client) as stub:
        stub.add_response("put_log_events", {"rejectedLogEventsInfo": info})
        result = sink.send(items)
        stub.assert_no_pending_responses()
    assert result is not None
    assert sorted(result.rejected) == expected
    assert not result.retry


def test_rejected_events_are_counted_and_spilled_rest_delivered(
    logs: Any, make_handler: Any, cw: Any, tmp_path: Any
) -> None:
    spill = tmp_path / "spill.jsonl"
    handler, logger = make_handler(spill_path=str(spill), flush_interval=60.0)
    client = cw.sink_of(handler).client()
    logs.create_log_group(logGroupName=handler.log_group_name)
    logs.create_log_stream(logGroupName=handler.log_group_name,
                           logStreamName=handler.log_stream_name)
    stub = Stubber(client)
    stub.add_response(
        "put_log_events",
        {"rejectedLogEventsInfo": {"expiredLogEventEndIndex": 1, "tooOldLogEventEndIndex": 2,
                                   "tooNewLogEventStartIndex": 5}},
    )
    stub.activate()
    try:
        for i in range(6):
            logger.info("event %d", i)
        assert handler.flush(10)
    finally:
        stub.deactivate()
    stats = handler.stats
    assert stats["rejected"] == 3
    assert stats["delivered"] == 3
    assert stats["spilled"] == 3
    spilled = list(read_spill(spill))
    reasons = {event["message"]: event["logship_spill"]["reason"] for event in spilled}
    assert reasons == {
        "event 0": "rejected by service: expired",
        "event 1": "rejected by service: too old",
        "event 5": "rejected by service: too new",
    }
