"""The CloudWatch event timestamp (integer ms) and the schema's ``timestamp`` field (RFC 3339, µs
rounded from ``record.created``) name the same millisecond, on every event shipped; they used to
disagree (floored vs rounded) about once in 500 events."""

import json
import logging
import random
import time
from datetime import datetime, timezone
from typing import Any

from dagster_logship.shipping.encoding import rfc3339
from dagster_logship.sinks.cloudwatch import _millis
from dagster_logship.testing import read_raw_events

#: Fractions of a second at the edges of rounding to µs and of flooring to ms.
EDGE_FRACTIONS = (
    0.0, 0.0000004, 0.0000005, 0.0004999, 0.0005, 0.0009995, 0.000999, 0.001, 0.1234565,
    0.4999995, 0.5, 0.9994999, 0.9995, 0.99949, 0.999, 0.9999, 0.999499, 0.9995001,
    0.999999, 0.9999994, 0.9999995, 0.9999999,
)  # fmt: skip


_MICRO = datetime(1970, 1, 1, 0, 0, 0, 1) - datetime(1970, 1, 1)


def schema_millis(stamp: str) -> int:
    """The millisecond an RFC 3339 ``...Z`` text with microseconds names."""
    when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    return ((when - epoch) // _MICRO) // 1000



def created_values(base: float, count: int) -> list[float]:
    rng = random.Random(20260101)
    values = [base + i + frac for i, frac in enumerate(EDGE_FRACTIONS)]
    # x.abc9995 for many millisecond positions: the rounding edge inside every millisecond.
    values += [base + 30 + ms / 1000 + 0.0009995 for ms in range(0, 1000, 7)]
    values += [base + 40 + rng.random() * 20 for _ in range(count)]
    return values


def test_millis_is_the_millisecond_of_the_schema_timestamp() -> None:
    rng = random.Random(7)
    base = 1_700_000_000.0
    values = created_values(base, 50_000) + [rng.uniform(0, 4e9) for _ in range(50_000)]
    for created in values:
        assert _millis(created) == schema_millis(rfc3339(created)), repr(created)
    # The old rule (floor of created * 1000) disagreed on some of these: the edges are real.
    assert sum(int(c * 1000) != _millis(c) for c in values) > 0


def test_every_shipped_event_agrees_with_its_timestamp_field(
    logs: Any, make_handler: Any
) -> None:
    handler, logger_ = make_handler()
    base = float(int(time.time()) - 120)
    values = created_values(base, 1500)
    for n, created in enumerate(values):
        record = logger_.makeRecord(logger_.name, logging.INFO, __file__, 1, "event %d", (n,),
                                    None)
        record.created = created
        logger_.handle(record)
    assert handler.flush(30)
    events = read_raw_events(handler.log_group_name, handler.log_stream_name, client=logs)
    assert len(events) == len(values)
    floored_would_differ = 0
    for event in events:
        shipped = json.loads(event["message"])
        assert event["timestamp"] == schema_millis(shipped["timestamp"]), shipped
        created = values[int(shipped["message"].split()[1])]
        floored_would_differ += int(created * 1000) != event["timestamp"]
    assert floored_would_differ > 0  # edge cases were really shipped
