"""The logger our ``@logger`` definitions return ships Dagster's relayed calls without a
``LogRecord``, and ships exactly what a plain ``logging.Logger`` would have.

The calls replayed here are the ones Dagster made in a real run (recorded by a ``@logger``), so
their metadata, DagsterEvents and tags are Dagster's own.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import pytest
from dagster import DagsterInstance, job, logger, op
from support import MemorySink

from dagster_logship import dagster_records
from dagster_logship.dagster_records import dagster_snapshot, relayed_snapshot
from dagster_logship.loggers._relay import RelayLogger
from dagster_logship.shipping import ShippingHandler, ShippingOptions
from dagster_logship.shipping.recursion import shipping_thread
from dagster_logship.shipping.snapshots import CREATED

Call = tuple[int, Any, tuple[Any, ...], dict[str, Any]]


class _Recorder(logging.Logger):
    calls: list[Call] = []

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        self.calls.append((level, msg, args, kwargs))


@logger
def _recording(init_context: Any) -> logging.Logger:
    return _Recorder("dagster", logging.DEBUG)


@op
def _chatty(context) -> None:  # type: ignore[no-untyped-def]
    for i in range(3):
        context.log.info(f"row batch {i}")
    context.log.debug("details")
    context.log.warning("running late")
    context.log.info("with a user extra", extra={"rows": 3})
    try:
        raise ValueError("boom")
    except ValueError:
        context.log.exception("caught it")


@job(logger_defs={"rec": _recording}, tags={"team": "data", "tier": "gold"})
def _chatty_job() -> None:
    _chatty()


@pytest.fixture(scope="module")
def dagster_calls() -> list[Call]:
    _Recorder.calls = []
    result = _chatty_job.execute_in_process(
        run_config={"loggers": {"rec": {}}}, instance=DagsterInstance.ephemeral()
    )
    assert result.success
    calls = list(_Recorder.calls)
    assert len(calls) > 8  # the op's calls and Dagster's own events (step start, success, ...)
    return calls


def _relayable(call: Call) -> bool:
    _, _, args, kwargs = call
    extra = kwargs.get("extra") or {}
    return not args and not kwargs.get("exc_info") and "rows" not in extra


def _shipping_logger(cls: type[logging.Logger], sink: MemorySink) -> logging.Logger:
    handler = ShippingHandler(
        lambda: sink,
        key=uuid.uuid4().hex,
        options=ShippingOptions(flush_interval=60.0),
        snapshot_record=dagster_snapshot,
    )
    logger_ = cls("dagster", logging.DEBUG)
    logger_.addHandler(handler)
    return logger_


def _replay(logger_: logging.Logger, calls: list[Call]) -> None:
    for level, msg, args, kwargs in calls:
        logger_.log(level, msg, *args, **kwargs)


def _close(logger_: logging.Logger) -> None:
    for handler in logger_.handlers:
        assert isinstance(handler, ShippingHandler)
        assert handler.flush(10)
        handler.close()


def test_the_snapshot_of_a_relayed_call_is_the_records(dagster_calls):
    plain = logging.Logger("dagster", logging.DEBUG)
    relayable = [call for call in dagster_calls if _relayable(call)]
    assert relayable
    for level, msg, args, kwargs in relayable:
        extra = kwargs["extra"]
        record = plain.makeRecord("dagster", level, "f.py", 1, msg, args, None, "f", extra)
        expected = dagster_snapshot(record)
        made = relayed_snapshot(
            record.created, record.levelname, "dagster", record.process, extra["dagster_meta"]
        )
        assert made is not None
        assert made[CREATED] == expected[CREATED]
        assert made == expected


def test_the_same_events_arrive_as_from_a_plain_logger(dagster_calls, monkeypatch):
    made_records: list[str] = []
    real_make = logging.Logger.makeRecord

    def counting(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        made_records.append(self.name)
        return real_make(self, *args, **kwargs)

    monkeypatch.setattr(logging.Logger, "makeRecord", counting)
    plain_sink, relay_sink = MemorySink(), MemorySink()
    plain = _shipping_logger(logging.Logger, plain_sink)
    relay = _shipping_logger(RelayLogger, relay_sink)
    _replay(plain, dagster_calls)
    assert len(made_records) == len(dagster_calls)
    made_records.clear()
    # the relay path meets the tags first
    monkeypatch.setattr(dagster_records, "_last_tags", (None, {}, ()))
    before = time.time()
    _replay(relay, dagster_calls)
    after = time.time()
    # only the calls with an exception or a user extra built a record
    assert len(made_records) == sum(not _relayable(call) for call in dagster_calls) == 2
    _close(plain)
    _close(relay)

    def events(sink: MemorySink) -> list[dict[str, Any]]:
        out = [dict(item.event) for call in sink.calls for item in call]
        for event in out:
            event.pop("timestamp")
        return out

    stamps = [item.timestamp for call in relay_sink.calls for item in call]
    assert stamps == sorted(stamps)
    assert before <= stamps[0] and stamps[-1] <= after  # the call's own time, in seconds
    shipped = events(relay_sink)
    assert len(shipped) == len(dagster_calls)
    assert shipped == events(plain_sink)
    messages = [event["message"] for event in shipped]
    for text in ("row batch 0", "row batch 1", "row batch 2", "details", "running late"):
        assert messages.count(text) == 1
    extra = next(event for event in shipped if event["message"] == "with a user extra")
    assert extra["rows"] == 3
    failed = next(event for event in shipped if event["message"] == "caught it")
    assert failed["exception"]["type"] == "ValueError"
    assert "ValueError: boom" in failed["exception"]["traceback"]


def _one_relayed_call(dagster_calls: list[Call]) -> Call:
    return next(call for call in dagster_calls if call[1] and _relayable(call)
                and call[3]["extra"]["dagster_meta"]["orig_message"] == "row batch 0")


class _OwnEmit(ShippingHandler):
    def emit(self, record: logging.LogRecord) -> None:
        record.msg = "through emit"
        super().emit(record)


class _OwnHandle(ShippingHandler):
    def handle(self, record: logging.LogRecord) -> Any:
        record.__dict__["orig_message"] = "ignored"
        return super().handle(record)


@pytest.mark.parametrize(
    "setup",
    ["handler_level", "handler_filter", "logger_filter", "disabled", "logging_disable",
     "second_handler", "parent"],
)
def test_what_a_plain_logger_honours_is_honoured(dagster_calls, setup, monkeypatch):
    level, msg, args, kwargs = _one_relayed_call(dagster_calls)
    sink, other = MemorySink(), MemorySink()
    relay = _shipping_logger(RelayLogger, sink)
    (handler,) = relay.handlers
    shipped_expected = 0
    if setup == "handler_level":
        handler.setLevel(logging.WARNING)
    elif setup == "handler_filter":
        handler.addFilter(lambda record: False)
    elif setup == "logger_filter":
        relay.addFilter(lambda record: False)
    elif setup == "disabled":
        relay.disabled = True
    elif setup == "logging_disable":
        logging.disable(logging.INFO)
        monkeypatch.setattr(relay, "_cache", {})
    elif setup == "second_handler":
        second = _shipping_logger(logging.Logger, other).handlers[0]
        relay.addHandler(second)
        shipped_expected = 1
    elif setup == "parent":
        relay.parent = _shipping_logger(logging.Logger, other)
        shipped_expected = 1
    try:
        relay.log(level, msg, *args, **kwargs)
    finally:
        logging.disable(logging.NOTSET)
    _close(relay)
    if setup == "parent":
        _close(relay.parent)
    assert sum(len(call) for call in sink.calls) == shipped_expected
    if setup in ("second_handler", "parent"):
        assert [item.event["message"] for call in other.calls for item in call] == ["row batch 0"]


def test_a_call_not_shaped_like_dagsters_takes_the_records_path():
    sink = MemorySink()
    relay = _shipping_logger(RelayLogger, sink)
    meta = {"orig_message": 42, "run_id": "r"}
    relay.log(logging.INFO, "line %s", "x", extra={"dagster_meta": {"orig_message": "m"}})
    relay.log(logging.INFO, "not a str", extra={"dagster_meta": meta})
    relay.log(logging.INFO, "no extra at all")
    relay.info("an ordinary call %d", 7)
    _close(relay)
    assert [item.event["message"] for call in sink.calls for item in call] == [
        "m", "not a str", "no extra at all", "an ordinary call 7"
    ]
    assert relayed_snapshot(0.0, "INFO", "n", 1, meta) is None


def test_what_only_a_record_carries_is_shipped(dagster_calls, monkeypatch):
    """A record factory's attributes, a handler subclass's own emit, no process id: each one
    needs the record (or says so), and ships as the plain path would."""
    level, msg, args, kwargs = _one_relayed_call(dagster_calls)
    real_factory = logging.getLogRecordFactory()

    def factory(*a: Any, **k: Any) -> logging.LogRecord:
        record = real_factory(*a, **k)
        record.trace_id = "abc"
        return record

    sink = MemorySink()
    relay = _shipping_logger(RelayLogger, sink)
    monkeypatch.setattr(logging, "logProcesses", False)
    relay.log(level, msg, *args, **kwargs)
    logging.setLogRecordFactory(factory)
    try:
        relay.log(level, msg, *args, **kwargs)
    finally:
        logging.setLogRecordFactory(real_factory)
    _close(relay)
    first, second = [item.event for call in sink.calls for item in call]
    assert first["pid"] is None and "trace_id" not in first
    assert second["trace_id"] == "abc"

    for cls, message in ((_OwnEmit, "row batch 0"), (_OwnHandle, "row batch 0")):
        own = MemorySink()
        handler = cls(lambda own=own: own, key=uuid.uuid4().hex,
                      options=ShippingOptions(flush_interval=60.0),
                      snapshot_record=dagster_snapshot)
        assert not handler.takes_snapshots(logging.CRITICAL)
        relay = RelayLogger("dagster", logging.DEBUG)
        relay.addHandler(handler)
        made: list[int] = []

        def counting(*a: Any, made: list[int] = made, relay: RelayLogger = relay,
                     **k: Any) -> logging.LogRecord:
            made.append(1)
            return logging.Logger.makeRecord(relay, *a, **k)

        monkeypatch.setattr(relay, "makeRecord", counting)
        relay.log(level, msg, *args, **kwargs)
        _close(relay)
        assert made == [1]
        assert [item.event["message"] for call in own.calls for item in call] == [message]


@pytest.mark.parametrize("logger_class", [RelayLogger, logging.Logger])
def test_odd_metadata_never_raises_into_the_op(dagster_calls, capfd, logger_class):
    """A tags mapping whose truth value raises ships with the tags as text (README, "Event
    schema"), on either path; the caller sees nothing."""
    level, msg, args, kwargs = _one_relayed_call(dagster_calls)

    class Hostile(dict):  # type: ignore[type-arg]
        def __bool__(self) -> bool:
            raise ValueError("ambiguous")

    meta = {**kwargs["extra"]["dagster_meta"], "job_tags": Hostile(a="b")}
    sink = MemorySink()
    relay = _shipping_logger(logger_class, sink)
    relay.log(level, msg, exc_info=None, extra={"dagster_meta": meta})
    relay.log(level, msg, *args, **kwargs)
    _close(relay)
    shipped = [item.event for call in sink.calls for item in call]
    assert [event["message"] for event in shipped] == ["row batch 0", "row batch 0"]
    assert shipped[0]["job_tags"] == {"job_tags": "{'a': 'b'}"}
    assert shipped[1]["job_tags"]["team"] == "data"
    assert shipped[1]["job_tags"] == dict(kwargs["extra"]["dagster_meta"]["job_tags"])
    assert "could not enqueue" not in capfd.readouterr().err


def test_a_call_on_a_shipping_thread_is_suppressed_and_counted(dagster_calls):
    level, msg, args, kwargs = _one_relayed_call(dagster_calls)
    sink = MemorySink()
    relay = _shipping_logger(RelayLogger, sink)
    (handler,) = relay.handlers
    shipping_thread(True)
    try:
        relay.log(level, msg, *args, **kwargs)
    finally:
        shipping_thread(False)
    relay.log(level, msg, *args, **kwargs)
    assert isinstance(handler, ShippingHandler)
    assert handler.stats["suppressed"] == 1
    _close(relay)
    assert sum(len(call) for call in sink.calls) == 1
