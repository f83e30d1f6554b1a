"""Retries with backoff and a deadline; per-event and per-batch outcomes; spill of the rest."""

from __future__ import annotations

import json
import os
import stat
import time

from dagster_logship.shipping import BatchRejectedError, RetryableError, SendResult


def test_transient_failures_are_retried_until_delivered(make_handler, sink):
    sink.script.extend([RetryableError("throttled")] * 3)
    handler, logger = make_handler()
    for i in range(3):
        logger.info("m%d", i)
    assert handler.flush(5)
    assert len(sink.calls) == 4
    assert [[i.event["message"] for i in call] for call in sink.calls] == [["m0", "m1", "m2"]] * 4
    stats = handler.stats
    assert (stats["retried"], stats["delivered"], stats["spilled"]) == (3, 3, 0)


def test_retry_after_is_a_floor_for_the_wait(make_handler, sink):
    sink.script.append(RetryableError("slow down", retry_after=0.3))
    times: list[float] = []
    sink.on_send = lambda items: times.append(time.monotonic())
    handler, logger = make_handler()
    logger.info("m")
    assert handler.flush(5)
    assert len(times) == 2
    assert times[1] - times[0] >= 0.3 * 0.95


def test_deadline_spills_with_the_reason(make_handler, sink, tmp_path, capfd):
    spill = tmp_path / "spill.jsonl"
    sink.script.extend([RetryableError("ThrottlingException")] * 1000)
    handler, logger = make_handler(retry_deadline=0.3, spill_path=str(spill))
    logger.info("a")
    logger.info("b")
    start = time.monotonic()
    assert handler.flush(5)
    assert time.monotonic() - start < 3
    lines = [json.loads(line) for line in spill.read_text().splitlines()]
    assert [line["message"] for line in lines] == ["a", "b"]
    assert "retries exhausted" in lines[0]["logship_spill"]["reason"]
    assert "ThrottlingException" in lines[0]["logship_spill"]["reason"]
    assert lines[0]["logship_spill"]["destination"] == "memory"
    assert stat.S_IMODE(os.stat(spill).st_mode) == 0o600
    err = capfd.readouterr().err
    assert f"spilled 2 record(s) for memory to {spill}" in err
    assert handler.stats["spilled"] == 2


def test_after_a_batch_gives_up_the_next_fails_fast_until_a_success(make_handler, sink, tmp_path):
    sink.script.extend([RetryableError("down")] * 1000)
    handler, logger = make_handler(retry_deadline=0.2, spill_path=str(tmp_path / "s"))
    logger.info("first")
    assert handler.flush(5)
    calls_before = len(sink.calls)
    logger.info("second")
    assert handler.flush(5)
    assert len(sink.calls) == calls_before + 1  # one probe, no backoff storm
    sink.script.clear()
    logger.info("third")
    assert handler.flush(5)
    logger.info("fourth")
    sink.script.append(RetryableError("blip"))
    assert handler.flush(5)
    assert sink.messages()[-3:] == ["third", "fourth", "fourth"]  # retried again once healthy


def test_batch_rejected_spills_and_says_so_once(make_handler, sink, capfd):
    problem = "AccessDeniedException: grant logs:PutLogEvents"
    sink.script.extend([BatchRejectedError("access denied", diagnostic=problem)] * 2)
    handler, logger = make_handler(max_batch_size=1)
    logger.info("a")
    logger.info("b")
    assert handler.flush(5)
    err = capfd.readouterr().err
    assert err.count(problem) == 1
    spilled = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert [s["message"] for s in spilled] == ["a", "b"]
    assert {s["logship_spill"]["reason"] for s in spilled} == {"access denied"}
    assert handler.stats["spilled"] == 2
    assert handler.stats["retried"] == 0


def test_per_event_rejections_and_retries(make_handler, sink, tmp_path):
    spill = tmp_path / "spill.jsonl"
    sink.script.append(SendResult(rejected=[(1, "too old")], retry=[2]))
    handler, logger = make_handler(spill_path=str(spill))
    for name in ("ok", "old", "flaky", "fine"):
        logger.info(name)
    assert handler.flush(5)
    assert [[i.event["message"] for i in call] for call in sink.calls] == [
        ["ok", "old", "flaky", "fine"],
        ["flaky"],  # only the transient failure is sent again
    ]
    stats = handler.stats
    assert (stats["delivered"], stats["rejected"], stats["spilled"], stats["retried"]) == (
        3,
        1,
        1,
        1,
    )
    (line,) = spill.read_text().splitlines()
    assert json.loads(line)["logship_spill"]["reason"] == "rejected by service: too old"


def test_unexpected_sink_error_never_reaches_the_caller(make_handler, sink, capfd):
    sink.script.append(KeyError("bug in a sink"))
    handler, logger = make_handler()
    logger.info("a")
    assert handler.flush(5)
    assert handler.stats["spilled"] == 1
    assert "unexpected error while sending" in capfd.readouterr().err
