"""``shipper: process`` pieces that need no cloud: what crosses the pipe, and JSON lines written
by the helper to this process's stdout."""

from __future__ import annotations

import datetime
import enum
import json
import logging
import marshal
import subprocess
import sys
import textwrap
from types import SimpleNamespace
from typing import Any

import pytest

from dagster_logship.shipping import ConfigError, ShippingOptions, build_event, encode, snapshot
from dagster_logship.shipping.remote import SinkSpec, plain_snapshot


class Color(enum.Enum):
    RED = "red"


class Opaque:
    def __str__(self) -> str:
        return "opaque!"


def _record(**extra: Any) -> logging.LogRecord:
    record = logging.LogRecord("app", logging.ERROR, "/x.py", 3, "hello %s", ("you",), None)
    record.__dict__.update(extra)
    return record


def _failure_event() -> Any:
    """What build_event reads of a DagsterEvent for a failed step (duck-typed here; real runs
    with shipper: process are in integration_tests/)."""
    error = SimpleNamespace(message="boom\n", cls_name="ValueError",
                            to_string=lambda: "Traceback...\nValueError: boom\n")
    return SimpleNamespace(event_type=SimpleNamespace(name="STEP_FAILURE"), pid=4242,
                           event_specific_data=SimpleNamespace(error=error))


META = {"orig_message": "m", "log_message_id": "id", "run_id": "r", "job_name": "j",
        "step_key": "s", "op_name": "o", "job_tags": {"team": "data", "n": 3}}


@pytest.mark.parametrize(
    "record",
    [
        _record(),
        _record(when=datetime.datetime(2026, 1, 2, 3, 4, 5), color=Color.RED, obj=Opaque(),
                data={"a": [1, 2, {"b": b"\xff"}]}, nan=float("nan"), s={3}),
        _record(dagster_meta={**META, "dagster_event": _failure_event()}),
        _record(dagster_meta={**META, "dagster_event": None, "job_name": Opaque()}),
    ],
    ids=["plain", "odd-extras", "dagster-failure", "odd-meta"],
)
def test_the_helper_encodes_the_same_event_as_this_process(record: logging.LogRecord) -> None:
    snap = snapshot(record)
    try:
        crossed = marshal.loads(marshal.dumps(snap))  # plain already: sent as it is
    except ValueError:
        crossed = marshal.loads(marshal.dumps(plain_snapshot(snap)))
    here, there = build_event(snap), build_event(crossed)
    assert encode(there) == encode(here)  # the very text that is sent
    if "dagster_meta" in record.__dict__ and record.dagster_meta["dagster_event"] is not None:
        assert there["event_type"] == "STEP_FAILURE" and there["pid"] == 4242
        assert there["exception"]["type"] == "ValueError"


def test_shipper_option_is_checked() -> None:
    with pytest.raises(ConfigError, match="shipper: got 'fork'"):
        ShippingOptions(shipper="fork")


def test_sink_spec_repr_shows_no_arguments() -> None:
    spec = SinkSpec("m", "Sink", ("a",), {"aws_secret_access_key": "hunter2"})
    assert "hunter2" not in repr(spec) and "m.Sink" in repr(spec)


def test_json_lines_from_the_helper_reach_this_process_stdout_in_order() -> None:
    script = textwrap.dedent("""
        import logging
        from dagster_logship import JsonStreamHandler
        handler = JsonStreamHandler(stream="stdout", shipper="process")
        logger = logging.getLogger("lines")
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        for i in range(2000):
            logger.info("line %d", i)
        assert handler.flush(30)
        import sys
        print(handler._worker.shipper_pid, handler.stats["delivered"], file=sys.stderr)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    helper, delivered = proc.stderr.split()
    assert helper != "None" and int(delivered) == 2000
    lines = proc.stdout.splitlines()
    assert [json.loads(line)["message"] for line in lines] == [f"line {i}" for i in range(2000)]


_CLOSED_THEN_FLUSHED = """
import logging, sys, time
from dagster_logship import JsonStreamHandler, flush_all
handler = JsonStreamHandler(stream="stdout", shipper="process")
logger = logging.Logger("lines", logging.INFO)
logger.addHandler(handler)
for i in range(2000):
    logger.info("line %d", i)
worker = handler._worker
with logging._lock:  # as logging.config.dictConfig closes live handlers (Dagster, every run)
    handler.close()  # under that lock: no waiting, the helper goes on delivering
deadline = time.monotonic() + 30
while worker._thread is not None and time.monotonic() < deadline:
    time.sleep(0.01)  # until the feed thread has closed the helper's input and ended
print("flushed", flush_all(float(sys.argv[1])), file=sys.stderr, flush=True)
"""


def test_flush_all_waits_for_a_helper_still_delivering_after_its_handler_was_closed() -> None:
    """The helper writes into a pipe nobody reads yet, so it cannot finish: flush_all must
    say so (False after its timeout), not answer True from a helper started for the flush."""
    proc = subprocess.Popen([sys.executable, "-c", _CLOSED_THEN_FLUSHED, "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        said = proc.stderr.readline().split()  # before anything is read from its stdout
        lines = proc.stdout.read().splitlines()  # now the helper can deliver
        proc.wait(60)
    finally:
        proc.kill()
    assert said == ["flushed", "False"]
    assert [json.loads(line)["message"] for line in lines] == [f"line {i}" for i in range(2000)]


def test_flush_all_after_a_close_returns_once_the_helper_has_delivered() -> None:
    proc = subprocess.run([sys.executable, "-c", _CLOSED_THEN_FLUSHED, "30"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.split()[-2:] == ["flushed", "True"]
    lines = proc.stdout.splitlines()
    assert [json.loads(line)["message"] for line in lines] == [f"line {i}" for i in range(2000)]


_GC_REPORTING_SINK = '''
import gc
from dagster_logship.shipping.sink import Sink, SinkLimits

class GcReportingSink(Sink):
    """Delivers nothing anywhere: it writes, per batch, the helper's collector settings."""
    destination = "gc-report"
    limits = SinkLimits(max_batch_events=100, max_batch_bytes=1 << 20, max_event_bytes=1 << 18)

    def __init__(self, path):
        self.path = path

    def send(self, items):
        with open(self.path, "a") as out:
            out.write(f"{len(items)} {gc.get_threshold()[0]} {gc.get_freeze_count() > 0}\\n")
        return None
'''

_RUN_GC_REPORTING_HELPER = """
import logging, sys
sys.path.insert(0, sys.argv[1])
from dagster_logship.shipping import ShippingHandler, ShippingOptions
from dagster_logship.shipping.remote import SinkSpec
import gcsink
out = sys.argv[2]
handler = ShippingHandler(lambda: gcsink.GcReportingSink(out), key=("gc", out),
                          options=ShippingOptions(shipper="process"),
                          sink_spec=SinkSpec("gcsink", "GcReportingSink", (out,)))
logger = logging.Logger("gc", logging.INFO)
logger.addHandler(handler)
for i in range(250):
    logger.info("line %d", i)
assert handler.flush(30)
print(handler._worker.shipper_pid, handler.stats["delivered"], file=sys.stderr)
"""


def test_the_helper_collects_garbage_in_larger_steps_and_skips_what_imports_left(
    tmp_path: Any,
) -> None:
    """tune_gc() runs in the helper (shipper.py): a young-generation threshold far above
    CPython's 700 and a frozen import heap; this process's collector is untouched."""
    from dagster_logship.shipping.shipper import GC_YOUNG_THRESHOLD

    (tmp_path / "gcsink.py").write_text(_GC_REPORTING_SINK)
    out = tmp_path / "report.txt"
    proc = subprocess.run(
        [sys.executable, "-c", _RUN_GC_REPORTING_HELPER, str(tmp_path), str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    helper, delivered = proc.stderr.split()
    assert helper != "None" and int(delivered) == 250
    rows = [line.split() for line in out.read_text().splitlines()]
    assert sum(int(n) for n, _, _ in rows) == 250
    assert {(threshold, frozen) for _, threshold, frozen in rows} == {
        (str(GC_YOUNG_THRESHOLD), "True")
    }


def test_cycles_are_still_collected_under_the_helpers_gc_settings() -> None:
    script = textwrap.dedent("""
        import gc, weakref
        from dagster_logship.shipping.shipper import GC_YOUNG_THRESHOLD, tune_gc
        tune_gc()
        class Node: pass
        a, b = Node(), Node()
        a.other, b.other = b, a
        gone = weakref.ref(a)
        del a, b
        keep = [[] for _ in range(GC_YOUNG_THRESHOLD * 2)]  # no explicit gc.collect()
        print(gone() is None, gc.isenabled())
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "True"]
