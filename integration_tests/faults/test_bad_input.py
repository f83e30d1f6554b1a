"""A corpus of hostile records through every sink (JSON lines, CloudWatch Logs via a moto server,
Cloud Logging via the fake server): no exception ever reaches the caller, no batch is refused
because of one bad event, every record arrives (or, if the service refuses that one event,
is spilled with the reason), and each transformation is the documented one. Names AWS or
Google forbid fail when the handler is built, naming the key."""

from __future__ import annotations

import collections
import io
import json
import logging
import math
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from dagster import build_init_logger_context
from faults_support import FAST, jsonl, moto_events

from dagster_logship import (
    CloudWatchHandler,
    ConfigError,
    GcpHandler,
    JsonStreamHandler,
    cloudwatch_logger,
    gcp_logger,
)

TWO_MB = 2 * 1024 * 1024
DAY = 86400.0


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def cyclic_exception() -> BaseException:
    first, second = ValueError("first"), KeyError("second")
    first.__cause__, second.__cause__ = second, first
    try:
        raise first
    except ValueError as exc:
        return exc


def corpus() -> list[dict[str, Any]]:
    """(rid, msg, args, extra, exc_info, created offset in seconds)."""
    nested: Any = "bottom"
    for _ in range(100):
        nested = {"down": nested}
    cycle: dict[str, Any] = {"name": "loop"}
    cycle["self"] = cycle
    loop_list: list[Any] = [1]
    loop_list.append(loop_list)
    return [
        {"rid": "empty", "msg": ""},
        {"rid": "two-mb", "msg": "x" * TWO_MB},
        {"rid": "two-mb-utf8", "msg": "é€" * (TWO_MB // 5)},
        {"rid": "surrogates", "msg": "bad \ud800 and \udfff surrogates"},
        {"rid": "bytes-msg", "msg": b"raw \xff\xfe bytes"},
        {"rid": "dict-msg", "msg": {"a": 1, "b": [1, 2]}},
        {"rid": "bad-args", "msg": "%d items", "args": ("not a number",)},
        {"rid": "control", "msg": "line1\nline2\t\x00\x1b[31mred\x7f"},
        {"rid": "extras", "msg": "odd extras", "extra": {
            "obj": object(), "aset": {1, 2}, "bytes_extra": b"\xff\x00ok", "dec": Decimal("1.5"),
            "unprintable": Unprintable(), "run_id": "user's own run_id",
        }},
        {"rid": "floats", "msg": "floats", "extra": {
            "nan": float("nan"), "inf": float("inf"), "ninf": float("-inf"),
        }},
        {"rid": "deep", "msg": "deep", "extra": {"nested": nested}},
        {"rid": "cycles", "msg": "cycles", "extra": {"cycle": cycle, "loop": loop_list}},
        {"rid": "exc-cycle", "msg": "cyclic causes", "exc": cyclic_exception()},
        {"rid": "far-past", "msg": "forty days ago", "offset": -40 * DAY},
        {"rid": "far-future", "msg": "three days ahead", "offset": 3 * DAY},
        {"rid": "last", "msg": "the last ordinary record"},
    ]


def log_corpus(logger: logging.Logger) -> None:
    for case in corpus():
        exc = case.get("exc")
        record = logger.makeRecord(
            logger.name, logging.INFO, __file__, 1, case["msg"], case.get("args", ()),
            (type(exc), exc, exc.__traceback__) if exc else None,
            extra={"rid": case["rid"], **case.get("extra", {})},
        )
        if "offset" in case:
            record.created = time.time() + case["offset"]
        logger.handle(record)  # never raises


def by_rid(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for event in events:
        out[event["rid"]].append(event)
    for parts in out.values():
        parts.sort(key=lambda e: (e.get("part") or {}).get("index", 0))
    return out


def check_transformations(got: dict[str, list[dict[str, Any]]]) -> None:
    """The README's list of transformations, as they arrive."""
    def whole(rid: str) -> str:
        parts = got[rid]
        if len(parts) > 1:
            assert [p["part"]["index"] for p in parts] == list(range(1, len(parts) + 1))
            assert {p["part"]["count"] for p in parts} == {len(parts)}
        return "".join(p["message"] for p in parts)

    assert whole("empty") == ""
    assert whole("two-mb") == "x" * TWO_MB  # split into ordered parts, nothing lost
    assert len(got["two-mb"]) >= 2
    assert whole("two-mb-utf8") == "é€" * (TWO_MB // 5)
    assert whole("surrogates") == "bad \ufffd and \ufffd surrogates"
    assert "raw" in whole("bytes-msg")  # str() of the bytes
    # a dict message ships its keys as fields, the message as the dict's compact JSON
    assert whole("dict-msg") == '{"a":1,"b":[1,2]}'
    assert (got["dict-msg"][0]["a"], got["dict-msg"][0]["b"]) == (1, [1, 2])
    assert "%d items" in whole("bad-args") and "could not merge args" in whole("bad-args")
    assert whole("control") == "line1\nline2\t\x00\x1b[31mred\x7f"
    extras = got["extras"][0]
    assert extras["aset"] == [1, 2]
    assert extras["bytes_extra"] == "\\xff\x00ok"
    assert extras["dec"] == "1.5"
    assert extras["unprintable"] == "<unprintable Unprintable>"
    assert extras["extra_run_id"] == "user's own run_id" and extras["run_id"] is None
    assert isinstance(extras["obj"], str) and "object" in extras["obj"]
    floats = got["floats"][0]
    assert (floats["nan"], floats["inf"], floats["ninf"]) == ("NaN", "Infinity", "-Infinity")
    depth, node = 0, got["deep"][0]["nested"]
    while isinstance(node, dict):
        node, depth = node["down"], depth + 1
    assert node == "<max depth>" and depth < 40
    assert got["cycles"][0]["cycle"]["self"] == "<cycle>"
    assert got["cycles"][0]["loop"] == [1, "<cycle>"]
    exception = got["exc-cycle"][0]["exception"]
    assert exception["type"] == "ValueError" and "KeyError" in exception["traceback"]


def test_json_stream(tmp_path: Path, no_secrets: Any) -> None:
    out = io.StringIO()
    handler = JsonStreamHandler(stream=out, **FAST)
    logger = logging.Logger("corpus-json", logging.DEBUG)
    logger.addHandler(handler)
    log_corpus(logger)
    assert handler.flush(30)
    handler.close()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]  # every line is JSON
    got = by_rid(lines)
    assert set(got) == {case["rid"] for case in corpus()}  # no time limits on a stream
    check_transformations(got)


def test_cloudwatch(moto_endpoint: str, tmp_path: Path, capfd: Any, no_secrets: Any) -> None:
    group = f"/faults/corpus/{uuid.uuid4().hex[:8]}"
    spill = tmp_path / "spill.jsonl"
    handler = CloudWatchHandler(log_group_name=group, log_stream_name="s", aws_region="us-east-1",
                                endpoint_url=moto_endpoint, spill_path=str(spill), **FAST)
    logger = logging.Logger("corpus-cw", logging.DEBUG)
    logger.addHandler(handler)
    log_corpus(logger)
    assert handler.flush(60)
    handler.close()
    got = by_rid(moto_events(moto_endpoint, group, "s"))
    spilled = by_rid(jsonl(spill))
    # CloudWatch drops events more than 2 h ahead, reported per event: that one is spilled,
    # the rest of its request is accepted.
    assert [e["logship_spill"]["reason"] for e in spilled["far-future"]] == [
        "rejected by service: too new"
    ]
    # (Events older than 14 days are dropped the same way. moto reports them with
    # tooOldLogEventEndIndex = 0 where AWS counts the event, so here the one record 40 days
    # old is neither stored nor spilled: a moto quirk, see tests/cloudwatch/test_rejections.)
    expected = {case["rid"] for case in corpus()} - {"far-future", "far-past"}
    assert set(got) == expected
    check_transformations(got)
    assert "Logging error" not in capfd.readouterr().err


def test_cloud_logging(fresh_gcp_server: Any, tmp_path: Path, capfd: Any, no_secrets: Any) -> None:
    spill = tmp_path / "spill.jsonl"
    handler = GcpHandler(project="faults", log_name="corpus", api_endpoint=fresh_gcp_server.url,
                         spill_path=str(spill), **FAST)
    logger = logging.Logger("corpus-gcp", logging.DEBUG)
    logger.addHandler(handler)
    log_corpus(logger)
    assert handler.flush(60)
    handler.close()
    got = by_rid([e["jsonPayload"] for e in fresh_gcp_server.entries()])
    spilled = by_rid(jsonl(spill))
    # Cloud Logging refuses entries older than 30 days or more than a day ahead, per entry
    # (partial success): those two are spilled with the reason, the others are written.
    assert set(spilled) == {"far-past", "far-future"}
    assert all(
        line["logship_spill"]["reason"].startswith("rejected by service: INVALID_ARGUMENT")
        for lines in spilled.values() for line in lines
    )
    assert set(got) == {case["rid"] for case in corpus()} - {"far-past", "far-future"}
    check_transformations(got)
    # Entries of a split message share a split uid and come in order.
    parts = [e for e in fresh_gcp_server.entries() if e["jsonPayload"]["rid"] == "two-mb"]
    assert len({e["split"]["uid"] for e in parts}) == 1
    assert "Logging error" not in capfd.readouterr().err


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"log_group_name": "has:colon"}, "log_group_name"),
        ({"log_group_name": "aws/reserved"}, "log_group_name"),
        ({"log_group_name": "spaces are not allowed"}, "log_group_name"),
        ({"log_group_name": "g" * 513}, "log_group_name"),
        ({"log_group_name": "/ok", "log_stream_name": "a:b"}, "log_stream_name"),
        ({"log_group_name": "/ok", "log_stream_name": "star*"}, "log_stream_name"),
        ({"log_group_name": "/ok", "log_stream_name": ""}, "log_stream_name"),
        ({"log_group_name": "/ok", "retention_in_days": 2}, "retention_in_days"),
    ],
)
def test_names_aws_forbids_fail_at_init_naming_the_key(kwargs: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as raised:
        CloudWatchHandler(aws_region="us-east-1", **kwargs)
    assert raised.value.key == key and str(raised.value).startswith(f"{key}:")
    with pytest.raises(Exception) as from_logger:  # the Dagster logger fails the same way
        cloudwatch_logger(build_init_logger_context(logger_config=kwargs))
    assert key in str(from_logger.value)


def test_names_google_forbids_fail_at_init_naming_the_key() -> None:
    with pytest.raises(ConfigError) as raised:
        GcpHandler(project="p", log_name="has spaces")
    assert raised.value.key == "log_name"
    with pytest.raises(Exception) as from_logger:
        gcp_logger(build_init_logger_context(
            logger_config={"project": "p", "log_name": "x" * 600}))
    assert "log_name" in str(from_logger.value)
    assert not math.isnan(0.0)  # (keeps the math import meaningful for readers of the corpus)
