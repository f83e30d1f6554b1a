"""``json_console_logger`` with ``format: dagster``: the lines of Dagster's own json_console_logger.

The first tests follow the shape of Dagster's own tests of its logger (a job that logs "Hello,
world!", stderr captured, every line parsed as JSON, the record found by
``dagster_meta.orig_message``) against ours. The rest compare the two directly: the same record
formatted by both, and both loggers attached to one run in a real process.
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import textwrap
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from dagster import build_init_logger_context, job, logger, op
from dagster._loggers import JsonLogFormatter

from dagster_logship import JsonStreamHandler, json_console_logger
from dagster_logship.handlers.stream import DagsterJsonFormatter
from dagster_logship.shipping import flush_all

DAGSTER_CONFIG = {"format": "dagster", "stream": "stderr", "flush_interval": 0.05}
#: The keys Dagster puts in ``dagster_meta`` (DagsterLogRecordMetadata).
META_KEYS = {
    "run_id", "job_name", "job_tags", "step_key", "op_name", "resource_name", "resource_fn_name",
    "dagster_event", "dagster_event_batch_metadata", "orig_message", "log_message_id",
    "log_timestamp",
}  # fmt: skip
#: What differs between two records of one log call made by two loggers.
PER_RECORD = {"created", "msecs", "relativeCreated"}


@op
def hello_world(context) -> None:  # type: ignore[no-untyped-def]
    context.log.info("Hello, world!")


@job(logger_defs={"json": json_console_logger})
def hello_job() -> None:
    hello_world()


def _json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.split("\n") if line]


def test_json_console_logger_dagster_format_writes_json_to_stderr(
    capfd: pytest.CaptureFixture[str],
) -> None:
    result = hello_job.execute_in_process(
        run_config={"loggers": {"json": {"config": DAGSTER_CONFIG}}}
    )
    assert result.success
    assert flush_all(10)
    captured = capfd.readouterr()

    lines = _json_lines(captured.err)  # every line of stderr is one JSON object
    found = [line for line in lines if line["dagster_meta"]["orig_message"] == "Hello, world!"]
    assert len(found) == 1
    assert "Hello, world!" not in captured.out

    (hello,) = found
    meta = hello["dagster_meta"]
    assert set(meta) == META_KEYS
    assert meta["run_id"] == result.run_id
    assert meta["job_name"] == "hello_job"
    assert meta["step_key"] == "hello_world"
    assert meta["op_name"] == "hello_world"
    assert meta["dagster_event"] is None
    assert hello["msg"] == f"hello_job - {result.run_id} - hello_world - Hello, world!"
    assert hello["levelname"] == "INFO"
    assert hello["name"] == "dagster"
    assert "dagster_event" not in hello  # only under dagster_meta, as Dagster's


def test_dagster_events_are_packed_under_dagster_meta(capfd: pytest.CaptureFixture[str]) -> None:
    config = {**DAGSTER_CONFIG, "log_level": "DEBUG"}
    result = hello_job.execute_in_process(run_config={"loggers": {"json": {"config": config}}})
    assert flush_all(10)
    lines = _json_lines(capfd.readouterr().err)
    events = [line["dagster_meta"]["dagster_event"] for line in lines]
    types = [event["event_type_value"] for event in events if event is not None]
    assert types[0] == "PIPELINE_START"
    assert "STEP_START" in types
    assert types[-1] == "PIPELINE_SUCCESS"
    for line in lines:
        assert line["dagster_meta"]["run_id"] == result.run_id
        event = line["dagster_meta"]["dagster_event"]
        if event is not None:
            assert event["__class__"] == "DagsterEvent"  # Dagster's serdes form


def test_logger_takes_the_record_path() -> None:
    """Our logger (it flushes at the run's end) hands every call to logging's own path: the
    formatter needs the record, which names Dagster's call as its caller, as Dagster's does."""
    logger_ = json_console_logger(build_init_logger_context(logger_config=DAGSTER_CONFIG))
    assert isinstance(logger_, logging.Logger)
    (handler,) = logger_.handlers
    assert isinstance(handler, JsonStreamHandler)
    assert isinstance(handler.formatter, DagsterJsonFormatter)
    assert not handler.takes_snapshots(logging.CRITICAL)


class _Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


_kept = _Keep()


@logger
def keeping_logger(_init_context: Any) -> logging.Logger:
    logger_ = logging.Logger("dagster", level=logging.DEBUG)
    logger_.addHandler(_kept)
    return logger_


@op
def chatty(context) -> None:  # type: ignore[no-untyped-def]
    context.log.info("plain")
    context.log.warning("with extras", extra={"row": 3, "names": ["a", "b"]})
    context.log.info("ünïcode ✓ \u2028")
    context.log.info("odd values", extra={"when": datetime(2026, 1, 2, tzinfo=timezone.utc)})
    try:
        raise ValueError("boom")
    except ValueError:
        context.log.exception("failed")


@job(logger_defs={"keep": keeping_logger})
def chatty_job() -> None:
    chatty()


def test_same_record_same_line_as_dagsters_formatter() -> None:
    _kept.records.clear()
    chatty_job.execute_in_process(run_config={"loggers": {"keep": {}}}, raise_on_error=False)
    records = list(_kept.records)
    assert len(records) > 10
    theirs, ours = JsonLogFormatter(), DagsterJsonFormatter()
    compared = unencodable = 0
    for record in records:
        line = ours.format(record)
        parsed = json.loads(line)
        try:
            expected = theirs.format(record)
        except (TypeError, ValueError):
            # Dagster's logger loses this line ("--- Logging error ---"); ours writes it.
            unencodable += 1
            assert parsed["dagster_meta"]["orig_message"] in ("odd values", "failed")
            if parsed["dagster_meta"]["orig_message"] == "failed":
                assert parsed["exc_info"].startswith("Traceback (most recent call last)")
                assert parsed["exc_info"].endswith("ValueError: boom")
            else:
                assert parsed["when"] == "2026-01-02T00:00:00+00:00"
            continue
        assert line == expected  # byte for byte
        compared += 1
    assert unencodable == 2
    assert compared == len(records) - 2


def test_what_json_cannot_encode_never_raises() -> None:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    record = logging.LogRecord("dagster", logging.INFO, __file__, 1, "m", (), None)
    record.__dict__.update(
        loop=loop, mixed={1: "a", "b": 2}, obj=object(), data=b"\xffraw", nan=float("nan")
    )
    with pytest.raises((TypeError, ValueError)):
        JsonLogFormatter().format(record)
    parsed = json.loads(DagsterJsonFormatter().format(record))
    assert parsed["loop"] == {"self": "<cycle>"}
    assert parsed["mixed"] == {"1": "a", "b": 2}
    assert parsed["obj"].startswith("<object object at")
    assert parsed["data"] == "\\xffraw"
    assert parsed["nan"] == "NaN"


def test_nan_is_written_as_dagster_writes_it() -> None:
    record = logging.LogRecord("dagster", logging.INFO, __file__, 1, "m", (), None)
    record.ratio = float("nan")
    line = DagsterJsonFormatter().format(record)
    assert line == JsonLogFormatter().format(record)
    assert '"ratio": NaN' in line


def test_a_long_line_is_never_split() -> None:
    out = io.StringIO()
    handler = JsonStreamHandler(stream=out, format="dagster", flush_timeout=5)
    logger_ = logging.Logger("dagster")
    logger_.addHandler(handler)
    try:
        logger_.info("x" * 600_000)
        assert handler.flush(5)
    finally:
        handler.close()
    (line,) = out.getvalue().splitlines()
    assert json.loads(line)["msg"] == "x" * 600_000


_BOTH_LOGGERS = """
    from dagster import job, op, json_console_logger as dagsters
    from dagster_logship import flush_all, json_console_logger as ours

    @op
    def step(context):
        context.log.info("Hello, world!")
        context.log.warning("with extras", extra={"row": 3})
        context.log.error("ünïcode ✓")

    @job(logger_defs={"dagsters": dagsters, "ours": ours})
    def both():
        step()

    result = both.execute_in_process(run_config={"loggers": {
        "dagsters": {"config": {"log_level": "DEBUG"}},
        "ours": {"config": {"log_level": "DEBUG", "format": "dagster", "stream": "stderr"}},
    }})
    assert result.success
    assert flush_all(10)
"""


def test_both_loggers_on_one_run_write_the_same_lines_to_stderr(tmp_path: Path) -> None:
    script = tmp_path / "both.py"
    script.write_text(textwrap.dedent(_BOTH_LOGGERS))
    # An ephemeral instance (no DAGSTER_HOME): no compute-log capture under the step, so both
    # loggers' writes reach this process's stderr directly (see the README for what differs
    # under capture).
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout == ""
    lines = _json_lines(done.stderr)  # both write to the process's stderr, nothing else there
    by_call: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in lines:
        by_call[line["dagster_meta"]["log_message_id"]].append(line)
    assert len(by_call) >= 10
    for pair in by_call.values():
        assert len(pair) == 2, pair  # one line from each logger for every call
        theirs, ours = pair
        assert set(theirs) == set(ours)
        for key in set(theirs) - PER_RECORD:
            assert theirs[key] == ours[key], key
    messages = [pair[0]["dagster_meta"]["orig_message"] for pair in by_call.values()]
    assert {"Hello, world!", "with extras", "ünïcode ✓"} <= set(messages)
