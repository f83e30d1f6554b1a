"""What arrives in Cloud Logging: entry fields, batches within the service limits, oversized
records as ordered parts. All through the real client against the fake server."""

from __future__ import annotations

import json
import logging
from typing import Any

from dagster_logship.shipping import SCHEMA_FIELDS
from dagster_logship.sinks.gcp import BATCH_EVENTS, MAX_ENTRY_BYTES, MAX_REQUEST_BYTES
from dagster_logship.testing import FakeCloudLogging


def test_entry_fields(server: FakeCloudLogging, make_handler: Any, gcp: Any) -> None:
    handler = make_handler(
        log_name="team/etl.logs", labels={"team": "data", "env": "test"},
        resource_type="generic_task",
        resource_labels={"project_id": gcp.PROJECT, "location": "local", "namespace": "n",
                         "job": "j", "task_id": "t"},
    )
    logger = gcp.logger_for(handler)
    logger.warning("disk at %d%%", 91, extra={"disk": "/dev/sda", "trace": "projects/p/traces/abc"})
    assert handler.flush(10)
    (entry,) = server.entries()
    assert entry["logName"] == f"projects/{gcp.PROJECT}/logs/team%2Fetl.logs"  # URL-encoded
    assert entry["resource"] == {
        "type": "generic_task",
        "labels": {"project_id": gcp.PROJECT, "location": "local", "namespace": "n",
                   "job": "j", "task_id": "t"},
    }
    assert entry["severity"] == "WARNING"
    assert entry["labels"] == {"team": "data", "env": "test"}
    assert len(entry["insertId"]) >= 16
    assert entry["trace"] == "projects/p/traces/abc"
    payload = entry["jsonPayload"]
    assert set(SCHEMA_FIELDS) <= set(payload)
    assert payload["message"] == "disk at 91%" and payload["disk"] == "/dev/sda"
    assert entry["timestamp"] == payload["timestamp"]
    location = entry["sourceLocation"]
    assert location["file"].endswith("test_entries.py")
    assert location["function"] == "test_entry_fields"
    assert int(location["line"]) > 0
    # Exactly our entries: no library diagnostic entry on the first write (DESIGN §5).
    assert server.requests()[0]["entries"] == 1


def test_default_resource_is_global_with_project(
    server: FakeCloudLogging, make_handler: Any, gcp: Any
) -> None:
    handler = make_handler()
    gcp.logger_for(handler).info("x")
    assert handler.flush(10)
    assert server.entries()[0]["resource"] == {
        "type": "global", "labels": {"project_id": gcp.PROJECT}
    }


def test_severity_mapping(server: FakeCloudLogging, make_handler: Any, gcp: Any) -> None:
    handler = make_handler()
    logger = gcp.logger_for(handler, level=1)
    for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL, 5):
        logger.log(level, "m")
    assert handler.flush(10)
    assert [e["severity"] for e in server.entries()] == [
        "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "DEFAULT"
    ]


def test_dagster_records(server: FakeCloudLogging, make_handler: Any, gcp: Any) -> None:
    handler = make_handler(labels={"team": "data"})
    meta = gcp.dagster_meta()
    gcp.logger_for(handler).info("composite line", extra={"dagster_meta": meta})
    assert handler.flush(10)
    (entry,) = server.entries()
    # insertId is Dagster's log_message_id: a resend from any process collapses into one entry.
    assert entry["insertId"] == meta["log_message_id"]
    assert entry["labels"] == {
        "run_id": meta["run_id"], "job_name": "etl_job", "step_key": "load", "team": "data"
    }
    assert "sourceLocation" not in entry  # Dagster re-logs: the location would be Dagster's
    payload = entry["jsonPayload"]
    assert payload["message"] == "loaded 3 rows" and payload["run_id"] == meta["run_id"]


def test_exception_records(server: FakeCloudLogging, make_handler: Any, gcp: Any) -> None:
    handler = make_handler()
    try:
        raise ValueError("bad row")
    except ValueError:
        gcp.logger_for(handler).exception("failed")
    assert handler.flush(10)
    payload = server.entries()[0]["jsonPayload"]
    assert payload["exception"]["type"] == "ValueError"
    assert "bad row" in payload["exception"]["traceback"]
    assert server.entries()[0]["severity"] == "ERROR"


def test_unserializable_and_odd_text(server: FakeCloudLogging, make_handler: Any, gcp: Any) -> None:
    handler = make_handler()
    cycle: list[Any] = []
    cycle.append(cycle)
    gcp.logger_for(handler).info(
        "ünïcødé \ud800 \"quoted\"\n", extra={"obj": object(), "nan": float("nan"), "cyc": cycle}
    )
    assert handler.flush(10)
    (entry,) = server.entries()
    assert entry["jsonPayload"]["message"].startswith("ünïcødé")
    assert entry["jsonPayload"]["nan"] == "NaN"


def test_batches_stay_within_limits(
    server: FakeCloudLogging, make_handler: Any, gcp: Any
) -> None:
    # Small records fill batches by count; 120 KB records fill them by bytes (60 > 10 MB).
    handler = make_handler(flush_interval=5.0)
    logger = gcp.logger_for(handler)
    for i in range(2_500):
        logger.info("small %d", i)
    big = "y" * 120_000
    for i in range(100):
        logger.info("big %d %s", i, big)
    assert handler.flush(30)
    requests = server.requests()
    assert all(r["status"] == 200 for r in requests)
    assert all(1 <= r["entries"] <= BATCH_EVENTS for r in requests)
    assert all(r["bytes"] <= MAX_REQUEST_BYTES for r in requests)
    assert max(r["entries"] for r in requests) == BATCH_EVENTS
    # 2,500 small ones make full 1,000-entry requests; the 12 MB of big ones are cut by bytes.
    assert max(r["bytes"] for r in requests) > 8_000_000
    assert len(requests) >= 4
    entries = server.entries()
    assert len(entries) == 2_600
    assert len({e["insertId"] for e in entries}) == 2_600
    for entry in entries:
        assert len(json.dumps(entry["jsonPayload"]).encode()) < MAX_ENTRY_BYTES


def test_oversized_record_is_split_into_ordered_parts(
    server: FakeCloudLogging, make_handler: Any, gcp: Any
) -> None:
    handler = make_handler()
    message = "".join(f"{i:07d}é" for i in range(70_000))  # ~630 KB of UTF-8
    meta = gcp.dagster_meta(orig_message=message)
    gcp.logger_for(handler).info("x", extra={"dagster_meta": meta})
    assert handler.flush(10)
    entries = server.entries()
    count = len(entries)
    assert count >= 3  # (orig_message, as large, is shortened in each part by the core)
    assert handler.stats["parts_split"] == count - 1
    for n, entry in enumerate(entries, start=1):
        assert entry["jsonPayload"]["part"] == {"index": n, "count": count}
        assert entry["split"] == {
            "uid": meta["log_message_id"], "index": n - 1, "totalSplits": count
        }
        assert entry["insertId"] == f"{meta['log_message_id']}-{n}"
        size = len(json.dumps(entry, separators=(",", ":"), ensure_ascii=False).encode())
        assert size < MAX_ENTRY_BYTES
    assert "".join(e["jsonPayload"]["message"] for e in entries) == message


def test_parts_without_dagster_share_one_split_uid(
    server: FakeCloudLogging, make_handler: Any, gcp: Any
) -> None:
    handler = make_handler()
    logger = gcp.logger_for(handler)
    logger.info("a" * 500_000)
    logger.info("b" * 500_000)
    assert handler.flush(10)
    entries = server.entries()
    uids = [e["split"]["uid"] for e in entries]
    assert len(entries) == 6 and len(set(uids)) == 2 and uids[:3] == [uids[0]] * 3
    assert len({e["insertId"] for e in entries}) == 6


def test_oversized_record_truncated_by_config(
    server: FakeCloudLogging, make_handler: Any, gcp: Any
) -> None:
    handler = make_handler(oversize="truncate")
    gcp.logger_for(handler).info("z" * 600_000)
    assert handler.flush(10)
    (entry,) = server.entries()
    assert "truncated" in entry["jsonPayload"]["message"]
    assert "split" not in entry and "part" not in entry["jsonPayload"]


def test_cached_entry_fragments_write_what_the_general_path_writes() -> None:
    """The entry of a common Dagster record is joined from cached fragments; it must be the
    same bytes the general path builds, for every label, severity and source combination."""
    import random

    from dagster_logship.dagster_records import dagster_snapshot as snapshot
    from dagster_logship.shipping.encoding import build_event, encode
    from dagster_logship.sinks.gcp import GcpSink, GcpTarget

    rng = random.Random(7)
    sink = GcpSink(GcpTarget.of(project="p", labels={"team": "data", "tier": "é\""}))
    fast = 0
    for i in range(600):
        meta = {
            "run_id": rng.choice([None, "r1", "r\"2"]),
            "job_name": rng.choice([None, "etl"]),
            "step_key": rng.choice([None, "load"]),
            "log_message_id": rng.choice([None, f"id-{i}", "id-\ud800"]),
            "orig_message": "m",
        }
        extra = {"dagster_meta": meta} if rng.random() < 0.8 else None
        if rng.random() < 0.1:
            extra = dict(extra or {}, trace="projects/p/traces/abc")
        record = logging.LogRecord("x", rng.choice([10, 20, 30, 40, 50, 5]), "/a.py",
                                   rng.randint(1, 9), "m %d", (i,), None)
        record.__dict__.update(extra or {})
        record.levelname = logging.getLevelName(record.levelno)
        event = build_event(snapshot(record))
        text = encode(event)[0]
        expected = sink._payload(event, text)
        got = sink.payload(text, event, ())
        if event["log_message_id"] is None:  # a random insertId each time: compare the rest
            got, expected = json.loads(got), json.loads(expected)
            assert len(got.pop("insertId")) == len(expected.pop("insertId")) == 32
        else:
            fast += 1
        assert got == expected, (i, event)
    assert len(sink._fragments) > 5 and fast > 100


def test_entries_made_from_the_snapshot_are_the_general_paths_bytes() -> None:
    """A plain Dagster record's entry is written from its snapshot, without building its event
    dict: for every record that path takes, the bytes are those made from the event."""
    import random

    from dagster_logship.dagster_records import dagster_snapshot as snapshot
    from dagster_logship.shipping.encoding import build_event
    from dagster_logship.shipping.event_text import event_text
    from dagster_logship.sinks.gcp import GcpSink, GcpTarget

    rng = random.Random(11)
    sink = GcpSink(GcpTarget.of(project="p", labels={"team": "data", "tier": "é\""}))
    taken = declined = 0
    for i in range(800):
        meta = {
            "run_id": rng.choice([None, "r1", "r\"2"]),
            "job_name": rng.choice([None, "etl", "é"]),
            "step_key": rng.choice([None, "load"]),
            "op_name": rng.choice([None, "load"]),
            "log_message_id": rng.choice([None, "", f"id-{i}", "id-\ud800", 7]),
            "orig_message": rng.choice([None, "m", "m\ud800"]),
            "job_tags": rng.choice([None, {"team": "data"}]),
        }
        extra: dict[str, Any] = {"dagster_meta": meta} if rng.random() < 0.85 else {}
        if rng.random() < 0.1:
            extra["trace"] = "projects/p/traces/abc"
        record = logging.LogRecord("x", rng.choice([10, 20, 30, 40, 50, 5]), "/a.py",
                                   rng.randint(1, 9), rng.choice(["m %d", "é %d", "\ud800 %d"]),
                                   (i,), None)
        record.__dict__.update(extra)
        record.levelname = logging.getLevelName(record.levelno)
        record.created = rng.uniform(1.7e9, 1.8e9)
        snap = snapshot(record)
        fast = event_text(snap)
        if fast is None:
            continue
        got = sink._plain_entry(snap, fast[0])
        if got is None:
            declined += 1
            continue
        taken += 1
        assert got == sink.payload(fast[0], build_event(snap), ()), (i, record.__dict__)
        assert json.loads(got)["insertId"] == meta["log_message_id"]
    # Taken for most plain Dagster records; declined for records without an id of their own
    # (a random insertId) and for lone surrogates (the general path replaces them).
    assert taken > 100 and declined > 50


class _TagMixin:
    """Adds a label to every entry: a payload() that comes from a mixin, not the sink class."""

    def payload(self, text: str, event: dict[str, Any] | None, snap: Any) -> Any:
        entry = json.loads(super().payload(text, event, snap))  # type: ignore[misc]
        entry["labels"] = dict(entry.get("labels") or {}, tagged="yes")
        return json.dumps(entry).encode()


def test_a_payload_from_a_mixin_is_called_for_every_record(
    server: FakeCloudLogging, gcp: Any
) -> None:
    from dagster_logship.dagster_records import dagster_snapshot
    from dagster_logship.shipping.handler import ShippingHandler
    from dagster_logship.shipping.options import ShippingOptions
    from dagster_logship.sinks.gcp import GcpSink, GcpTarget

    class Tagged(_TagMixin, GcpSink):
        pass

    target = GcpTarget.of(project=gcp.PROJECT, log_name="tagged", api_endpoint=server.url)
    handler = ShippingHandler(lambda: Tagged(target), key=("tagged", server.url),
                              options=ShippingOptions(flush_interval=0.02),
                              snapshot_record=dagster_snapshot)
    logger = gcp.logger_for(handler)
    meta = {"run_id": "r", "job_name": "j", "step_key": "s", "log_message_id": "id-1",
            "orig_message": "hello"}
    logger.info("hello", extra={"dagster_meta": meta})  # a plain Dagster record
    logger.info("no id of its own")
    try:
        assert handler.flush(10)
    finally:
        handler.close()
    entries = server.entries()
    assert [e["labels"].get("tagged") for e in entries] == ["yes", "yes"]
    assert entries[0]["insertId"] == "id-1"


def test_request_body_frames_exactly_the_entries_in_order() -> None:
    """``_body`` folds the request's head and tail into the first and last entry (one join):
    for none, one and several entries, and an item whose payload fell back to its text, the
    body is the head's fields plus exactly those entries, in order."""
    from dagster_logship.shipping.encoding import build_event, encode
    from dagster_logship.shipping.snapshots import snapshot
    from dagster_logship.sinks.gcp import GcpSink, GcpTarget

    sink = GcpSink(GcpTarget.of(project="p", log_name="app", labels={"team": "é\""}))
    items = []
    for i in range(5):
        record = logging.LogRecord("x", logging.INFO, "/a.py", 1, "m é %d", (i,), None)
        text = encode(build_event(snapshot(record)))[0]
        payload = text if i == 3 else sink.payload(text, build_event(snapshot(record)), ())
        items.append((text, payload, len(text), record.created, i))
    for chosen in (items[:0], items[:1], items):
        body = json.loads(sink._body(chosen, "p"))
        assert body["logName"] == "projects/p/logs/app" and body["partialSuccess"] is True
        assert body["resource"] == {"type": "global", "labels": {"project_id": "p"}}
        assert [e["jsonPayload"]["message"] for e in body["entries"]] == [
            f"m é {item[4]}" for item in chosen
        ]
