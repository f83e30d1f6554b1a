"""Bad input becomes valid JSON with a documented transformation; never an exception."""

from __future__ import annotations

import io
import json
import logging
import math
import time
import uuid
from datetime import datetime
from typing import Any

import pytest
from support import MemorySink

from dagster_logship import JsonStreamHandler
from dagster_logship.dagster_records import dagster_snapshot
from dagster_logship.shipping import SCHEMA_FIELDS, SinkLimits
from dagster_logship.shipping.encoding import build_event, encode, fit_event
from dagster_logship.shipping.snapshots import snapshot


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


@pytest.fixture
def json_logger():
    out = io.StringIO()
    handler = JsonStreamHandler(stream=out, flush_interval=60, flush_timeout=5)
    logger = logging.Logger(f"enc-{uuid.uuid4().hex[:6]}", level=logging.DEBUG)
    logger.addHandler(handler)

    def lines() -> list[dict]:
        assert handler.flush(5)
        return [json.loads(line) for line in out.getvalue().splitlines()]

    yield logger, lines
    handler.close()


def test_schema_fields_are_always_present(json_logger):
    logger, lines = json_logger
    logger.warning("plain %s", "args", extra={"rows": 3, "message_id": "x"})
    (event,) = lines()
    assert set(SCHEMA_FIELDS) <= set(event)
    assert event["message"] == "plain args"
    assert event["level"] == "WARNING"
    assert event["timestamp"].endswith("Z") and "T" in event["timestamp"]
    assert event["rows"] == 3 and event["message_id"] == "x"
    assert event["source"]["function"] == "test_schema_fields_are_always_present"


def test_extras_that_collide_with_schema_fields_are_prefixed(json_logger):
    logger, lines = json_logger
    logger.info("m", extra={"run_id": "from-user", "level": "custom"})
    (event,) = lines()
    assert event["run_id"] is None and event["extra_run_id"] == "from-user"
    assert event["level"] == "INFO" and event["extra_level"] == "custom"


def test_bad_input_corpus_ends_as_valid_json(json_logger):
    logger, lines = json_logger
    cyclic: dict = {"name": "loop"}
    cyclic["self"] = cyclic
    deep: list = []
    node = deep
    for _ in range(500):
        node.append([])
        node = node[0]
    try:
        try:
            raise ValueError("inner")
        except ValueError as inner:
            raise KeyError("outer") from inner
    except KeyError:
        logger.exception("with cause")
    logger.info("")
    logger.info("bad surrogate \udc80 here")
    logger.info(b"bytes message \xff")
    logger.info({"dict": "message", "n": 1})
    logger.info("%d items", "not a number")  # bad %-args
    logger.info(
        "extras",
        extra={
            "nan": math.nan,
            "inf": -math.inf,
            "obj": object(),
            "unprintable": Unprintable(),
            "cyclic": cyclic,
            "deep": deep,
            "raw": b"\x00\xfe",
            "set": {1},
            "uuid": uuid.UUID(int=1),
        },
    )
    events = lines()
    assert len(events) == 7
    by_message = {e["message"]: e for e in events}
    assert by_message["with cause"]["exception"]["type"] == "KeyError"
    assert "ValueError: inner" in by_message["with cause"]["exception"]["traceback"]
    assert "" in by_message
    assert "bad surrogate \ufffd here" in by_message
    assert "b'bytes message \\xff'" in by_message
    assert by_message['{"dict":"message","n":1}']["n"] == 1  # a dict message ships as fields
    bad_args = next(m for m in by_message if m.startswith("'%d items'"))
    assert "could not merge args" in bad_args
    extras = by_message["extras"]
    assert extras["nan"] == "NaN" and extras["inf"] == "-Infinity"
    assert extras["obj"].startswith("<object object")
    assert isinstance(extras["unprintable"], str)
    assert extras["cyclic"]["self"] == "<cycle>"
    assert "<max depth>" in json.dumps(extras["deep"])
    assert extras["raw"] == "\x00\\xfe"  # valid UTF-8 kept, invalid bytes escaped
    assert extras["set"] == [1]
    assert extras["uuid"] == str(uuid.UUID(int=1))


def test_oversized_message_is_split_into_ordered_parts():
    rec = logging.LogRecord("x", logging.INFO, __file__, 1, "é" * 30_000 + "END", (), None)
    event = build_event(snapshot(rec))
    text, nbytes = encode(event)
    parts = fit_event(event, text, nbytes, 10_000, "split")
    assert len(parts) > 1
    assert all(nb <= 10_000 for _, _, nb in parts)
    assert [p["part"] for p, _, _ in parts] == [
        {"index": i, "count": len(parts)} for i in range(1, len(parts) + 1)
    ]
    assert "".join(p["message"] for p, _, _ in parts) == "é" * 30_000 + "END"
    for part_event, part_text, part_bytes in parts:
        assert json.loads(part_text) == part_event
        assert len(part_text.encode()) == part_bytes


def test_oversized_message_truncated_with_a_marker():
    rec = logging.LogRecord("x", logging.INFO, __file__, 1, "a" * 50_000, (), None)
    event = build_event(snapshot(rec))
    (only,) = fit_event(event, *encode(event), 10_000, "truncate")
    assert only[2] <= 10_000
    assert only[0]["message"].startswith("a" * 1000)
    assert only[0]["message"].endswith("bytes]")
    assert "truncated" in only[0]["message"]


def test_oversized_extras_are_cut_too():
    rec = logging.LogRecord("x", logging.INFO, __file__, 1, "small", (), None)
    rec.blob = "z" * 50_000
    event = build_event(snapshot(rec))
    parts = fit_event(event, *encode(event), 10_000, "split")
    assert all(nb <= 10_000 for _, _, nb in parts)
    assert parts[0][0]["blob"]["truncated"] is True


def test_two_megabyte_message_reaches_a_sink_in_parts(make_handler):
    sink = MemorySink(
        SinkLimits(max_batch_events=50, max_batch_bytes=1_000_000, max_event_bytes=256 * 1024)
    )
    handler, logger = make_handler(target=sink)
    big = "0123456789" * 200_000
    logger.info(big)
    assert handler.flush(10)
    items = [item for call in sink.calls for item in call]
    assert len(items) >= len(big) // (256 * 1024) + 1
    assert all(item.size <= 256 * 1024 for item in items)
    assert [item.event["part"]["index"] for item in items] == list(range(1, len(items) + 1))
    assert all(sum(i.size for i in call) <= 1_000_000 for call in sink.calls)
    assert "".join(item.event["message"] for item in items) == big
    assert handler.stats["parts_split"] == len(items) - 1
    assert handler.stats["delivered"] == len(items)


def test_timestamps_match_datetime_isoformat_to_the_microsecond():
    import random
    from datetime import datetime, timezone

    from dagster_logship.shipping.encoding import rfc3339

    def reference(created: float) -> str:
        iso = datetime.fromtimestamp(created, tz=timezone.utc).isoformat(timespec="microseconds")
        return iso.replace("+00:00", "Z")

    rng = random.Random(7)
    samples = [rng.uniform(0, 4e9) for _ in range(20_000)]
    samples += [0.0, -1.5, 1e9 + 0.9999995, 1e9 + 0.0000005, 1795252905.9999996, 1795252905.5]
    assert [rfc3339(c) for c in samples] == [reference(c) for c in samples]


@pytest.mark.parametrize("created", [float("nan"), float("inf"), -float("inf"), "soon", None,
                                     1_700_000_000, "1700000000.5", 1e300])
def test_a_record_with_an_impossible_creation_time_is_shipped_with_the_time_it_was_logged(
    json_logger, created
):
    logger, lines = json_logger
    record = logger.makeRecord(logger.name, logging.INFO, __file__, 1, "when?", (), None)
    record.created = created
    before = time.time()
    logger.handle(record)
    logger.info("after")
    events = lines()
    assert [e["message"] for e in events] == ["when?", "after"]
    stamp = datetime.fromisoformat(events[0]["timestamp"].replace("Z", "+00:00")).timestamp()
    if created in (1_700_000_000, "1700000000.5"):
        assert stamp == float(created)  # a real number (or its text) is kept
    else:
        assert before - 1 <= stamp <= time.time() + 1


def test_a_handler_refusing_its_options_can_still_be_flushed_and_closed_at_shutdown():
    """logging keeps every constructed handler in its shutdown list, even one whose constructor
    raised; logging.shutdown() then flushes and closes it."""
    from dagster_logship.shipping import ShippingHandler

    def broken_sink() -> Any:
        raise RuntimeError("the sink cannot be built")

    class Refusing(ShippingHandler):
        pass

    with pytest.raises(RuntimeError, match="cannot be built") as refusal:  # traceback keeps it
        Refusing(broken_sink, "refusing-key")
    refused = [
        ref() for ref in list(logging._handlerList)  # type: ignore[attr-defined]
        if isinstance(ref(), Refusing) and ref().worker is None  # half-built
    ]
    assert refused
    for handler in refused:
        assert handler.flush() is True
        handler.close()
        assert handler.stats == {}
    del refusal


class _Shouty(str):
    def __str__(self) -> str:
        return self.upper()


@pytest.mark.parametrize(
    ("msg", "args", "deferred"),
    [
        ("batch %d of %s: %.2f%% done, ok=%s, none=%s", (3, "orders", 12.5, True, None), True),
        ("no args, 100%% literal", (), False),
        ("%d rows", ("not a number",), True),  # fails to merge: the same text either way
        ("%s and %s", ("only one",), True),
        ("%(table)s", ({"table": "orders"},), False),  # a mapping: merged at the call
        ("%s", ([1, 2],), False),  # a list could change after the call: merged at the call
        ("%s", (_Shouty("quiet"),), False),  # a str subclass may format itself differently
        ("%s \ud800", ("lone surrogate",), True),
    ],
)
def test_deferred_message_args_merge_to_what_getmessage_gives(msg, args, deferred):
    from dagster_logship.shipping.snapshots import ARGS, _message_of, message_text

    record = logging.LogRecord("m", logging.INFO, __file__, 1, msg, args, None)
    snap = snapshot(record)
    assert (len(snap) > ARGS) is deferred
    assert message_text(snap) == _message_of(record)


def test_a_list_argument_changed_after_the_call_is_shipped_as_it_was(json_logger):
    logger, lines = json_logger
    rows = [1, 2]
    logger.info("rows %s, count %d", rows, len(rows))
    rows.append(3)
    (event,) = lines()
    assert event["message"] == "rows [1, 2], count 2"


def test_job_tags_whose_comparison_raises_are_shipped_as_text(json_logger):
    class Touchy(dict):
        def __eq__(self, other):
            raise RuntimeError("no comparing me")

        __hash__ = None  # type: ignore[assignment]

    logger, lines = json_logger
    tags = Touchy(team="data")
    meta = {"orig_message": "m", "run_id": "r", "job_tags": tags}
    logger.info("m", extra={"dagster_meta": meta})
    logger.info("m", extra={"dagster_meta": meta})  # the same mapping again: compared
    events = lines()
    assert len(events) == 2
    assert all(e["job_tags"] for e in events)


def test_dagster_metadata_made_by_hand_ships_what_it_has_and_is_left_as_it_was(json_logger):
    """Dagster's own metadata has every key (read in one step); a dict missing some, or a
    mapping subclass that would invent missing keys, reads them as null and is not changed."""
    from collections import defaultdict

    logger, lines = json_logger
    full = {"orig_message": "full", "log_message_id": "id-1", "run_id": "r1", "job_name": "j",
            "step_key": "s", "op_name": "o", "job_tags": {"team": "data"},
            "dagster_event": None, "resource_name": None}
    partial = {"orig_message": "partial", "run_id": "r2"}
    inventive: defaultdict[str, object] = defaultdict(lambda: "invented", orig_message="dd")
    for meta in (full, partial, inventive):
        logger.info("line", extra={"dagster_meta": meta})
    events = lines()
    assert [e["orig_message"] for e in events] == ["full", "partial", "dd"]
    assert [e["message"] for e in events] == ["full", "partial", "dd"]
    assert [(e["log_message_id"], e["run_id"], e["job_name"], e["step_key"], e["op_name"])
            for e in events] == [("id-1", "r1", "j", "s", "o"), (None, "r2", None, None, None),
                                 (None, None, None, None, None)]
    assert [e["job_tags"] for e in events] == [{"team": "data"}, None, None]
    assert dict(inventive) == {"orig_message": "dd"}  # nothing added to the caller's mapping


@pytest.mark.parametrize(
    "msg, args, extra",
    [
        ("batch %d of %s: %.1f%%", (3, "orders", 12.5), None),  # deferred %-args
        ("plain", (), None),
        ("row %d", (1,), {"dagster_meta": {"orig_message": "row 1", "run_id": "r",
                                           "job_tags": {"team": "data"}}}),
    ],
)
def test_a_queued_snapshot_stops_being_tracked_by_the_first_young_collection(msg, args, extra):
    """A queue of snapshots costs the garbage collector nothing after one young collection: no
    snapshot waits for an older generation (whose collections walk more) to be untracked."""
    import gc
    from collections import deque

    def make() -> logging.LogRecord:  # as a log call makes it: a new args tuple each time
        record = logging.LogRecord("m", logging.INFO, __file__, 1, msg, tuple([*args]), None)
        for key, value in (extra or {}).items():
            setattr(record, key, value)
        return record

    queue: deque = deque()
    enabled = gc.isenabled()
    gc.disable()  # no automatic collection between making the snapshot and the one below
    try:
        dagster_snapshot(make())  # a run's first record makes the tags' pairs later ones share...
        gc.collect()  # ...which, like every shared value, are old and untracked by then (a
        gc.collect()  # collection untracks one level of nesting: the pairs, then their tuple)
        queue.append(dagster_snapshot(make()))
        assert gc.is_tracked(queue[0])
        gc.collect(0)
        assert not gc.is_tracked(queue[0])
    finally:
        if enabled:
            gc.enable()
