"""JsonStreamHandler (and the shared handler under it) the way watchtower users log: dicts as
messages, a ``logging.Formatter`` on the handler, ``dictConfig`` naming a formatter. Also what
the snapshot keeps of a dict message, and that a formatter turns the relay shortcut off."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import uuid
from collections.abc import Iterator
from datetime import date, datetime, timezone
from typing import Any

import pytest

from dagster_logship import JsonStreamHandler
from dagster_logship.loggers._config import build_logger
from dagster_logship.shipping.encoding import build_event
from dagster_logship.shipping.snapshots import (
    ARGS,
    EXTRAS,
    MEM,
    MESSAGE,
    SIZE,
    snapshot,
    with_message,
)


@pytest.fixture
def stream_logger() -> Iterator[tuple[JsonStreamHandler, logging.Logger, io.StringIO]]:
    out = io.StringIO()
    handler = JsonStreamHandler(stream=out, flush_interval=0.05, flush_timeout=5)
    logger = logging.getLogger(f"app.{uuid.uuid4().hex[:8]}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.addHandler(handler)
    yield handler, logger, out
    logger.removeHandler(handler)
    handler.close()


def _lines(handler: JsonStreamHandler, out: io.StringIO) -> list[dict[str, Any]]:
    assert handler.flush(5)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def _record(msg: Any, *args: Any, **extra: Any) -> logging.LogRecord:
    record = logging.LogRecord("t", logging.INFO, __file__, 7, msg, args or None, None)
    record.__dict__.update(extra)
    return record


def test_dict_message_keys_become_fields(stream_logger: Any) -> None:
    handler, logger, out = stream_logger
    logger.info(
        {"event": "x", "n": 1, "when": datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
         "day": date(2026, 1, 2), "tags": {"a"}, 7: "seven"},
        extra={"request": "r-1"},
    )  # fmt: skip
    (line,) = _lines(handler, out)
    assert line["message"] == (
        '{"event":"x","n":1,"when":"2026-01-02T03:04:05+00:00","day":"2026-01-02",'
        '"tags":["a"],"7":"seven"}'
    )
    assert (line["event"], line["n"], line["when"], line["day"]) == (
        "x", 1, "2026-01-02T03:04:05+00:00", "2026-01-02",
    )  # fmt: skip
    assert line["tags"] == ["a"]
    assert line["7"] == "seven"
    assert line["request"] == "r-1"
    keys = list(line)
    assert keys.index("event") < keys.index("request")  # the dict's fields, then extras


def test_schema_names_in_a_dict(stream_logger: Any) -> None:
    handler, logger, out = stream_logger
    logger.info({"message": "hi", "level": 3, "logger": "mine", "run_id": "r"})
    logger.info({"message": 5, "k": "v"})  # a message that is not a string: a field like others
    logger.info({"message": "only"})
    logger.info({})
    first, second, third, fourth = _lines(handler, out)
    assert first["message"] == "hi"
    assert (first["level"], first["extra_level"]) == ("INFO", 3)
    assert (first["logger"], first["extra_logger"]) == (logger.name, "mine")
    assert (first["run_id"], first["extra_run_id"]) == (None, "r")
    assert second["message"] == '{"message":5,"k":"v"}'
    assert second["extra_message"] == 5
    assert second["k"] == "v"
    assert third["message"] == "only"
    assert "extra_message" not in third
    assert fourth["message"] == "{}"


def test_what_is_not_a_plain_dict_message_ships_as_before() -> None:
    class Hostile(dict[str, Any]):
        def items(self) -> Any:
            raise RuntimeError("no")

    # a dict with %-args is a format, as logging merges it
    event = build_event(snapshot(_record({"a": 1}, "extra arg")))
    assert event["message"].startswith("{'a': 1} (could not merge args")
    assert "a" not in event
    assert build_event(snapshot(_record(Hostile(a=1))))["message"] == "{'a': 1}"
    assert build_event(snapshot(_record(b"raw")))["message"] == "b'raw'"
    assert build_event(snapshot(_record(["a", 1])))["message"] == "['a', 1]"


def test_dict_snapshot_is_flat_and_fixed_at_the_call() -> None:
    payload: dict[str, Any] = {"step": 1, "rows": [1]}
    snap = snapshot(_record(payload, custom="c"))
    payload["step"] = 2
    assert len(snap) == ARGS  # nothing left to merge
    assert snap[EXTRAS] == (("step", 1), ("rows", [1]), ("custom", "c"))
    assert snap[MESSAGE] == '{"step":1,"rows":[1]}'
    plain = snapshot(_record("x"))
    assert snap[SIZE] > plain[SIZE] and snap[MEM] > plain[MEM]


def test_with_message_replaces_the_text_and_drops_the_args() -> None:
    snap = snapshot(_record("n=%d %s", 5, "five"))
    assert len(snap) > ARGS  # args left for the worker to merge
    made = with_message(snap, "formatted")
    assert len(made) == ARGS
    assert build_event(made)["message"] == "formatted"
    assert made[SIZE] - snap[SIZE] == len("formatted") - len("n=%d %s")
    assert build_event(with_message(snapshot(_record("x")), 42))["message"] == "42"


def test_set_formatter_and_remove_it(stream_logger: Any) -> None:
    handler, logger, out = stream_logger
    assert handler.takes_snapshots(logging.INFO)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    assert not handler.takes_snapshots(logging.INFO)
    logger.info("hello %s", "world")
    try:
        raise KeyError("k")
    except KeyError:
        logger.exception("failed")
    handler.setFormatter(None)
    assert handler.takes_snapshots(logging.INFO)
    logger.info("plain again")
    first, second, third = _lines(handler, out)
    assert first["message"] == "INFO: hello world"
    assert second["message"].startswith("ERROR: failed\nTraceback (most recent call last)")
    assert second["exception"]["type"] == "KeyError"
    assert third["message"] == "plain again"


def test_formatter_assigned_directly_counts_too(stream_logger: Any) -> None:
    handler, logger, out = stream_logger
    handler.formatter = logging.Formatter("[%(name)s] %(message)s")
    logger.warning("w")
    assert _lines(handler, out)[0]["message"] == f"[{logger.name}] w"


def test_formatter_raising_ships_the_plain_message(
    stream_logger: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    class Broken(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            raise ValueError("bad format")

    handler, logger, out = stream_logger
    handler.setFormatter(Broken())
    logger.info("a %s", "b")
    logger.info({"k": 1})
    first, second = _lines(handler, out)
    assert first["message"] == "a b"
    assert (second["message"], second["k"]) == ('{"k":1}', 1)
    assert capfd.readouterr().err.count("bad format") == 1


def test_dictconfig_formatter_on_json_stream_handler(capsys: pytest.CaptureFixture[str]) -> None:
    name = f"app.dictconfig.{uuid.uuid4().hex[:8]}"
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"brief": {"format": "%(levelname)s: %(message)s"}},
            "handlers": {
                "json": {
                    "class": "dagster_logship.JsonStreamHandler",
                    "stream": "stderr",
                    "formatter": "brief",
                    "flush_interval": 0.05,
                }
            },
            "loggers": {name: {"handlers": ["json"], "level": "INFO", "propagate": False}},
        }
    )
    logger = logging.getLogger(name)
    (handler,) = logger.handlers
    try:
        logger.info("one")
        logger.error({"event": "two"})
        assert handler.flush(5)
    finally:
        logger.removeHandler(handler)
        handler.close()
    lines = [json.loads(x) for x in capsys.readouterr().err.splitlines() if x.startswith("{")]
    assert [(x["message"], x.get("event")) for x in lines] == [
        ("INFO: one", None),
        ("ERROR: {'event': 'two'}", "two"),
    ]


def test_a_formatter_turns_the_relay_shortcut_off() -> None:
    out = io.StringIO()
    handler = JsonStreamHandler(stream=out, flush_timeout=5)
    handler.setFormatter(logging.Formatter("%(levelname)s %(funcName)s: %(message)s"))
    logger = build_logger("dagster", "INFO", handler)
    meta = {
        "orig_message": "m", "run_id": "r", "job_name": "j", "step_key": "s", "op_name": "o",
        "log_message_id": "id", "job_tags": {}, "dagster_event": None,
    }  # fmt: skip
    try:
        logger.log(logging.INFO, "j - r - s - m", exc_info=None, extra={"dagster_meta": meta})
        assert handler.flush(5)
    finally:
        handler.close()
    (line,) = [json.loads(x) for x in out.getvalue().splitlines()]
    assert line["message"].startswith("INFO ")
    assert line["message"].endswith(": j - r - s - m")
    assert (line["orig_message"], line["run_id"]) == ("m", "r")
