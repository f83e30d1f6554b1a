"""json_console_logger in real Dagster runs: in-process and with the multiprocess executor."""

from __future__ import annotations

import collections
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterInstance, execute_job
from dagster._core.definitions.reconstruct import ReconstructableJob
from dagster._core.test_utils import instance_for_test

from dagster_logship.shipping import flush_all

HERE = Path(__file__).parent
JOBS = HERE / "json_jobs.py"
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import json_jobs  # noqa: E402


def reconstructable(name: str) -> ReconstructableJob:
    """The job by file path: step processes load it from the file, whatever their sys.path."""
    return ReconstructableJob.for_file(str(JOBS), name)


LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    with instance_for_test() as inst:
        yield inst


def run_config(level: str, multiprocess: bool, **logger: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "loggers": {
            "json": {
                "config": {
                    "log_level": level,
                    "flush_interval": 0.05,
                    "flush_timeout": 10,
                    **logger,
                }
            }
        }
    }
    if multiprocess:
        config["execution"] = {"config": {"multiprocess": {"max_concurrent": 2}}}
    else:
        config["execution"] = {"config": {"in_process": {}}}
    return config


def shipped_lines(out: str) -> list[dict[str, Any]]:
    lines = []
    for line in out.splitlines():
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except ValueError:
                pytest.fail(f"unparseable line on stdout: {line[:200]}")
    return lines


def read(capfd: pytest.CaptureFixture[str]) -> Any:
    """What was printed, once this process's loggers have delivered (step processes deliver
    before they exit; the run's own process keeps its loggers, so it is flushed here)."""
    assert flush_all(10)
    return capfd.readouterr()


# Dagster logs this one event in each step process through a log manager built without the
# job's loggers (multiprocess.py: create_context_free_log_manager), so no @logger ever sees it.
# Handlers configured in dagster.yaml (python_logs.dagster_handler_config) do.
NOT_ROUTED_TO_JOB_LOGGERS = {"STEP_WORKER_STARTED"}


def expected_records(instance: DagsterInstance, run_id: str, level: str) -> collections.Counter:
    """What Dagster's own event log holds for the run at or above ``level``."""
    counter: collections.Counter = collections.Counter()
    for entry in instance.all_logs(run_id):
        if entry.level < LEVELS[level]:
            continue
        event_type = entry.dagster_event.event_type.name if entry.dagster_event else None
        if event_type in NOT_ROUTED_TO_JOB_LOGGERS:
            continue
        counter[(entry.user_message, entry.step_key, event_type)] += 1
    return counter


def check_run(out: str, instance: DagsterInstance, run_id: str, level: str) -> list[dict]:
    events = [e for e in shipped_lines(out) if e.get("run_id") == run_id]
    got = collections.Counter((e["orig_message"], e["step_key"], e["event_type"]) for e in events)
    assert got == expected_records(instance, run_id, level)
    ids = [e["log_message_id"] for e in events]
    assert len(ids) == len(set(ids))  # exactly once
    assert all(e["job_name"] for e in events)
    assert all(LEVELS[e["level"]] >= LEVELS[level] for e in events)
    return events


@pytest.mark.parametrize("multiprocess", [False, True], ids=["in_process", "multiprocess"])
@pytest.mark.parametrize("level", ["DEBUG", "INFO"])
def test_every_record_at_the_level_is_printed_exactly_once(capfd, instance, multiprocess, level):
    result = execute_job(
        reconstructable("fan"), instance=instance, run_config=run_config(level, multiprocess)
    )
    assert result.success
    out = read(capfd).out
    events = check_run(out, instance, result.run_id, level)
    steps = ("first", "second", "third", "last")
    user = [e for e in events if e["event_type"] is None and e["message"].startswith(steps)]
    assert len(user) == 4 * (3 + 1 + (1 if level == "DEBUG" else 0))
    assert {e["step_key"] for e in user} == set(steps)
    # user records keep their order within a step, and their extras
    for step in steps:
        infos = [e for e in user if e["step_key"] == step and e["level"] == "INFO"]
        assert [e["row"] for e in infos] == [0, 1, 2]
        assert [e["message"] for e in infos] == [f"{step} info {i}" for i in range(3)]
    if multiprocess:
        assert len({e["pid"] for e in user}) > 1  # really shipped from step processes


def test_failure_is_shipped_with_its_error(capfd, instance):
    result = execute_job(
        reconstructable("fails"), instance=instance, run_config=run_config("INFO", True)
    )
    assert not result.success
    events = check_run(read(capfd).out, instance, result.run_id, "INFO")
    failure = next(e for e in events if e["event_type"] == "STEP_FAILURE")
    assert failure["step_key"] == "failing"
    assert failure["level"] == "ERROR"
    assert "ValueError" in failure["exception"]["message"] or failure["exception"]["type"]
    assert "boom in op" in json.dumps(failure["exception"])


def test_error_level_filters_out_the_rest(capfd):
    result = json_jobs.fails.execute_in_process(
        run_config={"loggers": {"json": {"config": {"log_level": "ERROR", "flush_timeout": 10}}}},
        raise_on_error=False,
    )
    assert not result.success
    events = [e for e in shipped_lines(read(capfd).out) if e.get("run_id") == result.run_id]
    assert events and all(e["level"] == "ERROR" for e in events)
    assert {e["event_type"] for e in events} >= {"STEP_FAILURE", "RUN_FAILURE"}


def test_gcp_format_lines_for_googles_agents(capfd):
    result = json_jobs.fan.execute_in_process(
        run_config={"loggers": {"json": {"config": {"format": "gcp", "flush_timeout": 10}}}}
    )
    assert result.success
    lines = [e for e in shipped_lines(read(capfd).out) if e.get("run_id") == result.run_id]
    user = [e for e in lines if e["message"] == "second info 1"]
    assert len(user) == 1
    line = user[0]
    assert line["severity"] == "INFO"
    assert line["time"].endswith("Z")
    assert line["logging.googleapis.com/labels"] == {
        "run_id": result.run_id,
        "job_name": "fan",
        "step_key": "second",
    }
    assert "timestamp" not in line  # "time" carries it
    assert all(e["severity"] in ("DEBUG", "INFO", "WARNING", "ERROR") for e in lines)


def test_stderr_stream(capfd):
    result = json_jobs.fan.execute_in_process(
        run_config={"loggers": {"json": {"config": {"stream": "stderr", "flush_timeout": 10}}}}
    )
    assert result.success
    captured = read(capfd)
    assert not [e for e in shipped_lines(captured.out) if e.get("run_id") == result.run_id]
    assert [e for e in shipped_lines(captured.err) if e.get("run_id") == result.run_id]
