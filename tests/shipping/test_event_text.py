"""The worker's fast event text is the general encoder's text, byte for byte, or it steps aside."""

from __future__ import annotations

import json
import logging
import random
from types import SimpleNamespace

import pytest

from dagster_logship.dagster_records import dagster_snapshot as snapshot
from dagster_logship.shipping.encoding import build_event, encode
from dagster_logship.shipping.event_text import event_text

# Strings that need escaping or are not ASCII, including a lone surrogate (invalid unicode).
_NASTY = ['plain', 'quote " and \\ backslash', "tab\tnew\nline\x00nul", "é ü 日本 🚀",
          "\ud800 lone", "</script>", "", " " * 3, "\u2028\u2029"]  # fmt: skip


class _Kind:
    """Stands in for Dagster's DagsterEventType enum member (the schema takes ``.name``)."""

    def __init__(self, name: str) -> None:
        self.name = name


def _dagster_event(rng: random.Random, with_error: bool) -> SimpleNamespace:
    data = None
    if with_error:
        error = SimpleNamespace(cls_name="ValueError", message="boom\n", to_string=lambda: "tb")
        data = SimpleNamespace(error=error)
    return SimpleNamespace(
        event_type=_Kind(rng.choice(["STEP_START", "STEP_SUCCESS", "RUN_START"])),
        pid=rng.choice([None, 4242, 17]),
        event_specific_data=data,
    )


def _record(rng: random.Random, i: int) -> tuple[logging.LogRecord, bool]:
    """A record of one of the shapes the worker sees; True when the fast path must take it."""
    kind = rng.choice(["plain", "dagster", "dagster_event", "error_event", "extras", "exc",
                       "odd_meta", "odd_pid", "no_process"])  # fmt: skip
    logger = logging.Logger(rng.choice(["dagster", "my.app", "naïve \"name\""]))
    msg = rng.choice(_NASTY) + " %d"
    extra: dict = {}
    fast = kind in ("plain", "dagster", "dagster_event", "no_process")
    if kind in ("dagster", "dagster_event", "error_event", "odd_meta"):
        orig = rng.choice([None, rng.choice(_NASTY) + str(i)])
        extra["dagster_meta"] = {
            "run_id": rng.choice([None, "3f0c2a4e", "rün \"1\""]),
            "job_name": rng.choice([None, "etl"]),
            "step_key": rng.choice([None, "load", "lo\tad"]),
            "op_name": rng.choice([None, "load"]),
            "orig_message": orig,
            "log_message_id": rng.choice([None, f"id-{i}", "\ud800"]),
            "job_tags": rng.choice([None, {}, {"team": "data"}, {"a": "1", "b": "é\""}]),
            "dagster_event": (
                _dagster_event(rng, kind == "error_event")
                if kind in ("dagster_event", "error_event") else None
            ),
        }
        if kind == "odd_meta":  # values that are not strings: the general path's business
            extra["dagster_meta"]["run_id"] = rng.choice([1, 1.0, True, ["x"]])
    elif kind == "extras":
        extra["rows"] = i
    record = logger.makeRecord(logger.name, rng.choice([10, 20, 30, 40]), "/src/app.py",
                               rng.randint(1, 500), msg, (i,), None, func=rng.choice([None, "f"]),
                               extra=extra or None)  # fmt: skip
    record.created = rng.uniform(0, 4e9)
    if kind == "exc":
        try:
            raise KeyError("k")
        except KeyError as exc:
            record.exc_info = (KeyError, exc, exc.__traceback__)
    if kind == "odd_pid":
        record.process = rng.choice([True, 1.5, "12"])
    if kind == "no_process":
        record.process = None
    return record, fast


def test_fast_text_equals_the_general_encoders_text_on_generated_records():
    rng = random.Random(20261128)
    taken = {True: 0, False: 0}
    for i in range(3000):
        record, expected_fast = _record(rng, i)
        snap = snapshot(record)
        general = encode(build_event(snap))
        fast = event_text(snap)
        if fast is not None:
            assert fast == general, (i, record.__dict__)
            json.loads(fast[0])  # valid JSON, surrogates replaced
        taken[fast is not None] += 1
        if expected_fast:
            assert fast is not None, (i, record.__dict__)
    # Both paths were exercised, the fast one for most records of this mix.
    assert taken[True] > 1000 and taken[False] > 1000


@pytest.mark.parametrize(
    "change",
    [
        {"exc_text": "Traceback ..."},
        {"stack_info": "Stack (most recent call last) ..."},
        {"rows": 3},  # an extra field
    ],
)
def test_records_with_more_than_the_schema_take_the_general_path(change):
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", (), None)
    record.__dict__.update(change)
    assert event_text(snapshot(record)) is None


def test_values_that_only_compare_equal_do_not_share_cached_fragments():
    """``1 == True``: a pid of True must not reuse the fragments cached for pid 1."""
    one = logging.LogRecord("eq", logging.INFO, __file__, 7, "m", (), None)
    one.process = 1
    fast_one = event_text(snapshot(one))
    assert fast_one is not None and '"pid":1,' in fast_one[0]
    odd = logging.LogRecord("eq", logging.INFO, __file__, 7, "m", (), None)
    odd.process = True
    assert event_text(snapshot(odd)) is None
    assert '"pid":true' in encode(build_event(snapshot(odd)))[0]


def test_a_source_line_that_is_not_an_int_does_not_reuse_an_int_lines_fragments():
    ten = logging.LogRecord("ln", logging.INFO, __file__, 10, "m", (), None)
    assert '"line":10,' in event_text(snapshot(ten))[0]
    odd = logging.LogRecord("ln", logging.INFO, __file__, 10, "m", (), None)
    odd.lineno = 10.0
    assert event_text(snapshot(odd)) is None
    assert '"line":10.0,' in encode(build_event(snapshot(odd)))[0]
