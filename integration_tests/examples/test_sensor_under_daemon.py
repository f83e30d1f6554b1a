"""``logger_check_sensor`` under a real ``dagster-daemon``, with runs launched as a deployment
launches them: ``dagster job launch`` queues them, the daemon's run coordinator starts each in
its own process through the code location's server, and the sensor daemon reads their
RUN_START events. The other tests call the sensor's body with a context built by hand; only here
does Dagster decide when it runs and which runs it sees.

Slow for a test (about half a minute): a daemon, a code server and two run processes start.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import console_script, stop_session, wait_for

GROUP = "/dagster/daemon-check"

DEFS = '''
from dagster import Definitions, job, op
from dagster_logship import cloudwatch_logger, logger_check_sensor

@op
def hello(context):
    context.log.info("hello from a daemon-launched run")

# Names its logger in its default run config: the logger starts, the sensor stays quiet.
@job(logger_defs={"cloudwatch": cloudwatch_logger},
     config={"loggers": {"cloudwatch": {"config": {"log_group_name": "LOG_GROUP"}}}})
def shipped():
    hello()

# Attaches the logger but no run config names it: Dagster falls back to its console.
@job(logger_defs={"cloudwatch": cloudwatch_logger})
def forgot():
    hello()

defs = Definitions(jobs=[shipped, forgot],
                   sensors=[logger_check_sensor(minimum_interval_seconds=1)])
'''.replace("LOG_GROUP", GROUP)

INSTANCE = """
telemetry:
  enabled: false
run_coordinator:
  module: dagster._core.run_coordinator
  class: QueuedRunCoordinator
  config:
    dequeue_interval_seconds: 1
"""

SENSOR = "dagster_logship_logger_check"
WARNING_PREFIX = "dagster-logship: this run did not start logger 'cloudwatch'"






@pytest.fixture
def deployment(tmp_path: Path, moto_endpoint: str,
               monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """A code location, an instance (DAGSTER_HOME) with a queued run coordinator, and a
    running ``dagster-daemon``, all in ``tmp_path``; the daemon's process group is killed at
    the end (its code server and run processes with it)."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(INSTANCE)
    (tmp_path / "defs.py").write_text(DEFS)
    (tmp_path / "workspace.yaml").write_text(
        "load_from:\n  - python_file:\n      relative_path: defs.py\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", moto_endpoint)
    # The instance's SQLite storage is made (and its schema stamped) here, before the daemon
    # starts. Created by the daemon and by this test at once, the database was stamped twice,
    # and the daemon died on alembic's "more than one head present" (seen once in CI).
    from dagster import DagsterInstance

    DagsterInstance.get().dispose()
    log = tmp_path / "daemon.log"
    with open(log, "w") as out:
        daemon = subprocess.Popen(
            [console_script("dagster-daemon"), "run", "-w", "workspace.yaml"],
            cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        yield {"dir": tmp_path, "log": log, "daemon": daemon}
    finally:
        stop_session(daemon)  # its code servers and run workers too




def _launch(where: Path, job: str) -> None:
    subprocess.run([console_script("dagster"), "job", "launch", "-w", "workspace.yaml", "-j", job],
                   cwd=where, check=True, capture_output=True, timeout=120)


def _warnings(instance: Any, run_id: str) -> list[str]:
    return [
        r.dagster_event.message or ""
        for r in instance.all_logs(run_id)
        if r.level == logging.WARNING and r.dagster_event is not None
        and (r.dagster_event.message or "").startswith("dagster-logship:")
    ]


def _ticked(instance: Any, sensor: str) -> bool:
    """The daemon has evaluated ``sensor`` at least once (a tick is recorded)."""
    from dagster._core.scheduler.instigation import InstigatorType

    return any(
        state.instigator_name == sensor
        and instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=1)
        for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)
    )


def _run_of(instance: Any, job: str) -> Any:
    runs = instance.get_runs()
    return next((r for r in runs if r.job_name == job), None)


@pytest.mark.skipif(sys.platform == "win32", reason="process groups")
def test_the_daemon_warns_in_a_run_that_did_not_start_its_logger(
    deployment: dict[str, Any], moto_endpoint: str,
) -> None:
    import boto3
    from dagster import DagsterInstance, DagsterRunStatus

    where, log = deployment["dir"], deployment["log"]
    instance = DagsterInstance.get()
    # A run status sensor starts from the newest event when it first ticks: runs that start
    # before that are never shown to it. Launch only once it has ticked.
    wait_for(lambda: _ticked(instance, SENSOR), 90, "the sensor's first tick", log)

    def finished(job: str) -> Any:
        run = _run_of(instance, job)
        return run if run is not None and run.status in (
            DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE) else None

    _launch(where, "shipped")
    shipped = wait_for(lambda: finished("shipped"), 120, "the run of 'shipped'", log)
    _launch(where, "forgot")
    forgot = wait_for(lambda: finished("forgot"), 120, "the run of 'forgot'", log)
    assert shipped.status == forgot.status == DagsterRunStatus.SUCCESS

    # The sensor reads RUN_START events in order: once it has warned in the second run, it has
    # looked at the first.
    warnings = wait_for(lambda: _warnings(instance, forgot.run_id), 60,
                     "the sensor's warning in the run of 'forgot'", log)
    assert len(warnings) == 1 and warnings[0].startswith(WARNING_PREFIX)
    assert "job 'forgot'" in warnings[0]
    assert _warnings(instance, shipped.run_id) == []
    # ... and said, in the run that did, where its logs went.
    shipped_to = [
        r.dagster_event.message or "" for r in instance.all_logs(shipped.run_id)
        if r.level == logging.INFO and r.dagster_event is not None
        and (r.dagster_event.message or "").startswith("dagster-logship:")
    ]
    assert len(shipped_to) == 1
    assert shipped_to[0].startswith(
        "dagster-logship: this run's logs are shipped by logger 'cloudwatch' (cloudwatch_logger) "
        f"to CloudWatch Logs group {GROUP!r}, stream 'shipped/{shipped.run_id}'"
    )

    # The run that started its logger shipped from its own process: its record is in CloudWatch.
    client = boto3.session.Session().client(
        "logs", region_name="us-east-1", endpoint_url=moto_endpoint,
        aws_access_key_id="testing", aws_secret_access_key="testing")
    events = client.filter_log_events(logGroupName=GROUP)["events"]
    shipped_events = [json.loads(e["message"]) for e in events]
    assert {e.get("run_id") for e in shipped_events} == {shipped.run_id}
    assert [e["message"] for e in shipped_events if e["step_key"] == "hello"
            and e["message"].startswith("hello from")] == ["hello from a daemon-launched run"]
