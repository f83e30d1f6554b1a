"""``dagster-logship run``: the daemon's, the webserver's and the code servers' own log lines,
shipped from real processes (a moto server process, the fake Cloud Logging server on loopback).

Each test starts ``dagster-logship run ... -- COMMAND`` in its own session, waits on what arrives
at the destination (polling, never a fixed sleep), stops it with SIGTERM as a deployment does,
and kills what is left of the session at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import console_script, kill_session, wait_for

from dagster_logship.testing import FakeCloudLogging, read_events

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and sessions")

DEFS = """
from dagster import DefaultSensorStatus, Definitions, SkipReason, sensor

@sensor(minimum_interval_seconds=1, default_status=DefaultSensorStatus.RUNNING)
def heartbeat_sensor(context):
    return SkipReason("nothing to do")

defs = Definitions(sensors=[heartbeat_sensor])
"""

INSTANCE = "telemetry:\n  enabled: false\n"




def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])






@pytest.fixture
def deployment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A code location with a running sensor and an instance (DAGSTER_HOME) whose storage is
    made before any daemon starts (two processes stamping a new SQLite schema at once fail)."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(INSTANCE)
    (tmp_path / "defs.py").write_text(DEFS)
    (tmp_path / "workspace.yaml").write_text(
        "load_from:\n  - python_file:\n      relative_path: defs.py\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    from dagster import DagsterInstance

    DagsterInstance.get().dispose()
    return tmp_path


@contextlib.contextmanager
def _started(argv: list[str], where: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """``argv`` in its own session, output to a file; the session is killed at the end."""
    log = where / "process.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, cwd=where, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        yield proc, log
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        kill_session(proc.pid)


def _cw_events(group: str, endpoint: str) -> list[dict[str, Any]]:
    try:
        return read_events(group, endpoint_url=endpoint, flush=False)
    except Exception as exc:  # the group appears with the first batch
        if "ResourceNotFound" in type(exc).__name__ or "does not exist" in str(exc):
            return []
        raise


def _having(events: list[dict[str, Any]], kind: str, start: str) -> list[dict[str, Any]]:
    return [e for e in events if e.get("process_kind") == kind
            and str(e.get("message", "")).startswith(start)]


def test_daemon_lines_arrive_with_their_process_and_the_last_ones_survive_sigterm(
    deployment: Path, moto_endpoint: str,
) -> None:
    group = "/dagster/daemon-process"
    argv = [console_script("dagster-logship"), "run", "--log-group", group,
            "--endpoint-url", moto_endpoint, "--region", "us-east-1", "--level", "DEBUG",
            "--", "dagster-daemon", "run", "-w", "workspace.yaml", "--log-level", "debug"]
    started = time.monotonic()
    with _started(argv, deployment) as (proc, log):
        def sensor_checked() -> list[dict[str, Any]]:
            events = _cw_events(group, moto_endpoint)
            return events if (
                _having(events, "daemon", "Instance is configured with the following daemons")
                and _having(events, "daemon", "Checking for new runs for sensor: heartbeat_sensor")
            ) else []

        events = wait_for(sensor_checked, 30, "the daemon's startup and sensor lines", log)
        [startup] = _having(events, "daemon", "Instance is configured with the following daemons")
        assert startup["logger"] == "dagster.daemon" and startup["level"] == "INFO"
        assert "SensorDaemon" in startup["message"]
        sensor_line = _having(events, "daemon", "Checking for new runs for sensor")[0]
        assert sensor_line["daemon"] == "SensorDaemon"
        assert sensor_line["logger"].startswith("dagster.daemon.SensorDaemon")
        # Still printed as before.
        console = log.read_text(errors="replace")
        assert "Instance is configured with the following daemons" in console
        # The code server the daemon started for the workspace was wrapped too.
        assert any(e.get("process_kind") == "code-server" for e in events)
        streams = {e["logStreamName"] for e in
                   _raw(group, moto_endpoint)}
        assert any(s.startswith("daemon/") for s in streams)
        assert any(s.startswith("code-server/") for s in streams)

        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(30) == 0
    # Delivered before the process ended: read once, no waiting.
    after = _cw_events(group, moto_endpoint)
    assert _having(after, "daemon", "Received interrupt, shutting down daemon threads")
    assert _having(after, "daemon", "Daemon threads shut down.")
    assert _having(after, "daemon", "dagster-logship: `dagster-daemon run")[-1]["message"].endswith(
        "exited with status 0")
    assert time.monotonic() - started < 60


def _raw(group: str, endpoint: str) -> list[dict[str, Any]]:
    from dagster_logship.testing import read_raw_events

    return read_raw_events(group, endpoint_url=endpoint, flush=False)


def test_webserver_startup_lines_arrive_in_cloudwatch(
    deployment: Path, moto_endpoint: str,
) -> None:
    group = "/dagster/webserver-process"
    port = _free_port()
    argv = [console_script("dagster-logship"), "run", "--log-group", group,
            "--endpoint-url", moto_endpoint, "--region", "us-east-1", "--no-children",
            "--", "dagster-webserver", "-p", str(port), "-w", "workspace.yaml"]
    with _started(argv, deployment) as (proc, log):
        serving = f"Serving dagster-webserver on http://127.0.0.1:{port}"
        events = wait_for(lambda: _having(_cw_events(group, moto_endpoint), "webserver", serving),
                       35, "the webserver's startup line", log)
        assert events[0]["logger"] == "dagster-webserver"
        assert serving in log.read_text(errors="replace")
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(30)
    # --no-children: the code server the webserver started shipped nothing.
    assert not [e for e in _cw_events(group, moto_endpoint)
                if e.get("process_kind") == "code-server"]


def test_webserver_startup_lines_arrive_in_cloud_logging(
    deployment: Path, gcp_server: FakeCloudLogging,
) -> None:
    port = _free_port()
    argv = [console_script("dagster-logship"), "run", "--project", "test-project",
            "--api-endpoint", gcp_server.url, "--log-name", "dagster-processes",
            "--", "dagster-webserver", "-p", str(port), "-w", "workspace.yaml"]
    serving = f"Serving dagster-webserver on http://127.0.0.1:{port}"

    def arrived() -> list[dict[str, Any]]:
        return [e for e in gcp_server.entries()
                if str(e.get("jsonPayload", {}).get("message", "")).startswith(serving)]

    with _started(argv, deployment) as (proc, log):
        [entry] = wait_for(arrived, 35, "the webserver's startup line", log)
        assert entry["logName"] == "projects/test-project/logs/dagster-processes"
        assert entry["labels"]["process_kind"] == "webserver"
        assert entry["jsonPayload"]["process_kind"] == "webserver"
        assert entry["severity"] == "INFO"
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(30)


def test_dagster_dev_ships_its_webserver_and_daemon_children(
    deployment: Path, moto_endpoint: str,
) -> None:
    group = "/dagster/dev-processes"
    port = _free_port()
    argv = [console_script("dagster-logship"), "run", "--log-group", group,
            "--endpoint-url", moto_endpoint, "--region", "us-east-1",
            "--", "dagster", "dev", "-p", str(port), "-w", "workspace.yaml"]
    with _started(argv, deployment) as (proc, log):
        def all_three() -> list[dict[str, Any]]:
            events = _cw_events(group, moto_endpoint)
            ok = (_having(events, "dev", "Launching Dagster services")
                  and _having(events, "webserver", "Serving dagster-webserver on")
                  and _having(events, "daemon", "Instance is configured with the following"))
            return events if ok else []

        events = wait_for(all_three, 40, "the lines of dagster dev, its webserver and daemon", log)
        pids = {kind: {e["pid"] for e in events if e.get("process_kind") == kind}
                for kind in ("dev", "webserver", "daemon")}
        assert len(set().union(*pids.values())) >= 3  # three processes
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(30)


def test_a_script_keeps_its_console_its_exit_status_and_its_records(
    tmp_path: Path, gcp_server: FakeCloudLogging,
) -> None:
    """Reconfiguring logging (as Dagster and uvicorn do) keeps the relay; lastResort still
    prints warnings of loggers without handlers; the exit status is the script's."""
    script = tmp_path / "proc.py"
    script.write_text(
        "import logging, logging.config, sys\n"
        "logging.config.dictConfig({'version': 1, 'disable_existing_loggers': False,\n"
        "    'handlers': {'out': {'class': 'logging.StreamHandler', 'stream': 'ext://sys.stdout'}},\n"
        "    'loggers': {'uvicorn': {'handlers': ['out'], 'level': 'INFO', 'propagate': False},\n"
        "                'dagster': {'handlers': ['out'], 'level': 'INFO'}}})\n"
        "logging.getLogger('dagster.daemon.SensorDaemon').info('from the sensor daemon')\n"
        "logging.getLogger('uvicorn.error').info('from uvicorn')\n"
        "logging.getLogger('some.lib').warning('no handler of its own')\n"
        "logging.getLogger('some.lib').info('below the root level')\n"
        "sys.exit(3)\n"
    )
    gcp_server.clear()
    result = subprocess.run(
        [console_script("dagster-logship"), "run", "--project", "p",
         "--api-endpoint", gcp_server.url,
         "--process-kind", "worker", "--", sys.executable, str(script)],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    assert result.returncode == 3, result.stderr
    assert "from the sensor daemon" in result.stdout and "from uvicorn" in result.stdout
    assert result.stderr.strip() == "no handler of its own"
    payloads = [e["jsonPayload"] for e in gcp_server.entries()]
    by_message = {p["message"]: p for p in payloads}
    assert by_message["from the sensor daemon"]["daemon"] == "SensorDaemon"
    assert by_message["from uvicorn"]["logger"] == "uvicorn.error"
    assert by_message["no handler of its own"]["level"] == "WARNING"
    assert "below the root level" not in by_message
    assert {p["process_kind"] for p in payloads} == {"worker"}
    assert json.dumps(payloads).count("exited with status 3") == 1
