"""``context.log`` lines of a sensor and a schedule, evaluated by a real ``dagster-daemon``, in
CloudWatch through ``CloudWatchComputeLogManager`` and in Cloud Logging (the bundled fake
server) through ``GcpComputeLogManager`` (Dagster writes them only through the compute log
manager's ``open_log_stream``), and read back as the UI reads a tick's logs.

The daemon's instance takes the manager from dagster.yaml, with the endpoint given as
``{env: ...}``. The schedule's state is started 90 s in the past, so that the daemon catches up
the last minute's tick at once instead of waiting for the next one.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cl_support import wait_for
from support import console_script, stop_session

from dagster_logship.compute_logs.keys import joined
from dagster_logship.compute_logs.readback import is_marker
from dagster_logship.testing import FakeCloudLogging, read_events

GROUP = "/dagster/tick-logs"
LOG_NAME = "dagster-tick-logs"

DEFS = '''
from dagster import DefaultScheduleStatus, DefaultSensorStatus, Definitions, SkipReason, job, op
from dagster import schedule, sensor

@op
def noop():
    pass

@job
def target():
    noop()

@sensor(job=target, minimum_interval_seconds=1, default_status=DefaultSensorStatus.RUNNING)
def watcher(context):
    context.log.info("watcher looked around")
    context.log.warning("watcher saw nothing")
    return SkipReason("nothing new")

@schedule(job=target, cron_schedule="* * * * *")
def every_minute(context):
    context.log.info("every_minute ticked")
    return SkipReason("not today")

defs = Definitions(jobs=[target], sensors=[watcher], schedules=[every_minute])
'''

#: The ``context.log`` lines each instigator's tick logs, in order.
WANTED = {"watcher": ["watcher looked around", "watcher saw nothing"],
          "every_minute": ["every_minute ticked"]}

CLOUDWATCH_INSTANCE = f"""
telemetry:
  enabled: false
compute_logs:
  module: dagster_logship
  class: CloudWatchComputeLogManager
  config:
    log_group_name: {GROUP}
    endpoint_url:
      env: CL_TEST_ENDPOINT
    aws_region: us-east-1
    flush_interval: 0.2
"""

GCP_INSTANCE = f"""
telemetry:
  enabled: false
compute_logs:
  module: dagster_logship
  class: GcpComputeLogManager
  config:
    project: test-project
    log_name: {LOG_NAME}
    api_endpoint:
      env: CL_TEST_ENDPOINT
    flush_interval: 0.2
"""






@pytest.fixture
def deployment(request: pytest.FixtureRequest, tmp_path: Path,
               monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """DAGSTER_HOME with our manager (``cloudwatch`` against moto or ``gcp`` against the fake
    Cloud Logging server, by the test's indirect parameter), the schedule started in the past,
    a running daemon (its process group killed at the end, code server included)."""
    from dagster import DagsterInstance
    from dagster._core.scheduler.instigation import InstigatorType, ScheduleInstigatorData

    if request.param == "cloudwatch":
        instance_yaml, endpoint = CLOUDWATCH_INSTANCE, request.getfixturevalue("moto_endpoint")
    else:
        instance_yaml, endpoint = GCP_INSTANCE, request.getfixturevalue("gcp_server").url
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(instance_yaml)
    (tmp_path / "defs.py").write_text(DEFS)
    (tmp_path / "workspace.yaml").write_text(
        "load_from:\n  - python_file:\n      relative_path: defs.py\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("CL_TEST_ENDPOINT", endpoint)
    # Storage made (and stamped) before the daemon starts: made by both at once, it was stamped
    # twice once (see integration_tests/examples/test_sensor_under_daemon.py).
    instance = DagsterInstance.get()
    subprocess.run([console_script("dagster"), "schedule", "start", "every_minute", "-w",
                    "workspace.yaml"], cwd=tmp_path, check=True, capture_output=True, timeout=60)
    state = instance.all_instigator_state(instigator_type=InstigatorType.SCHEDULE)[0]
    data = state.instigator_data
    assert isinstance(data, ScheduleInstigatorData)
    instance.update_instigator_state(state.with_data(ScheduleInstigatorData(
        data.cron_schedule, start_timestamp=time.time() - 90)))
    instance.dispose()
    log = tmp_path / "daemon.log"
    with open(log, "w") as out:
        daemon = subprocess.Popen(
            [console_script("dagster-daemon"), "run", "-w", "workspace.yaml"],
            cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        yield {"dir": tmp_path, "log": log}
    finally:
        stop_session(daemon)


def _tick_with_logs(instance: Any, name: str) -> Any:
    for state in instance.all_instigator_state():
        if state.instigator_name != name:
            continue
        for tick in instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=10):
            if tick.is_completed and tick.log_key:
                return tick
    return None


def _wait_for_tick(instance: Any, name: str, log: Path) -> Any:
    """The first completed tick of ``name`` that has a log key (the daemon's log printed if it
    never comes)."""
    try:
        return wait_for(lambda: _tick_with_logs(instance, name), 45, f"a tick of {name}")
    except AssertionError:
        print(log.read_text(errors="replace")[-3000:])
        raise


@pytest.mark.skipif(sys.platform == "win32", reason="process groups")
@pytest.mark.parametrize("deployment", ["cloudwatch"], indirect=True)
def test_sensor_and_schedule_log_lines_are_in_cloudwatch(
    deployment: dict[str, Any], moto_endpoint: str
) -> None:
    from dagster import DagsterInstance
    from dagster._core.definitions.instigation_logger import get_instigation_log_records

    instance = DagsterInstance.get()
    for name, messages in WANTED.items():
        tick = _wait_for_tick(instance, name, deployment["log"])
        stream = f"{joined(tick.log_key)}/stderr"
        events = read_events(GROUP, stream, endpoint_url=moto_endpoint, flush=False)
        lines = [e for e in events if not is_marker(e)]
        # Each line is the JSON record Dagster's InstigationLogger wrote; the event says which
        # instigator and tick it came from.
        assert [e["instigator"] for e in lines] == [name] * len(messages)
        assert {e["tick"] for e in lines} == {tick.log_key[-1]}
        assert {e["stream"] for e in lines} == {"stderr"}
        assert any(e.get("capture_complete") for e in events)
        # Read back through the instance's manager, as the UI shows a tick's logs.
        records = get_instigation_log_records(instance, tick.log_key)
        assert [r["msg"].rsplit(" - ", 1)[-1] for r in records] == messages


def _gcp_entries(server: FakeCloudLogging, log_key: list[str]) -> list[dict[str, Any]]:
    """The entries of the tick's stderr in the fake server (the real service lists them once
    each; the fake keeps a resent one, so they are taken once by insertId)."""
    unique = {e["insertId"]: e for e in server.entries()
              if e.get("labels", {}).get("log_key") == joined(log_key)}
    return sorted(unique.values(), key=lambda e: e["jsonPayload"].get("offset", 0))


def _complete_entries(server: FakeCloudLogging, log_key: list[str]) -> list[dict[str, Any]]:
    """The tick's entries once its completion marker is among them, else none."""
    entries = _gcp_entries(server, log_key)
    return entries if any(e["jsonPayload"].get("capture_complete") for e in entries) else []


@pytest.mark.skipif(sys.platform == "win32", reason="process groups")
@pytest.mark.parametrize("deployment", ["gcp"], indirect=True)
def test_sensor_and_schedule_log_lines_are_in_cloud_logging(
    deployment: dict[str, Any], gcp_server: FakeCloudLogging
) -> None:
    from dagster import DagsterInstance
    from dagster._core.definitions.instigation_logger import get_instigation_log_records
    from dagster._core.storage.compute_log_manager import ComputeIOType

    instance = DagsterInstance.get()
    manager = instance.compute_log_manager
    for name, messages in WANTED.items():
        tick = _wait_for_tick(instance, name, deployment["log"])
        # The tick may be stored a moment before its stream's last entries reach the server.
        entries = wait_for(functools.partial(_complete_entries, gcp_server, tick.log_key), 20,
                           f"the completion marker of {name}'s tick")
        lines = [e for e in entries if not is_marker(e["jsonPayload"])]
        for entry in entries:
            assert entry["logName"] == f"projects/test-project/logs/{LOG_NAME}"
            assert entry["labels"]["stream"] == "stderr"
        # Each line is the JSON record Dagster's InstigationLogger wrote; the entry says which
        # instigator and tick it came from.
        records = [json.loads(e["jsonPayload"]["message"]) for e in lines]
        assert [r["msg"].rsplit(" - ", 1)[-1] for r in records] == messages
        assert [e["jsonPayload"]["instigator"] for e in lines] == [name] * len(messages)
        assert {e["jsonPayload"]["tick"] for e in lines} == {tick.log_key[-1]}
        assert {e["jsonPayload"]["stream"] for e in lines} == {"stderr"}
        # Read back from the server through the instance's manager, as the UI shows a tick's
        # logs (this process captured nothing).
        read_back = get_instigation_log_records(instance, tick.log_key)
        assert [r["msg"].rsplit(" - ", 1)[-1] for r in read_back] == messages
        assert manager.is_capture_complete(tick.log_key)
        assert tick.log_key in manager.get_log_keys_for_log_key_prefix(
            tick.log_key[:-1], ComputeIOType.STDERR)
