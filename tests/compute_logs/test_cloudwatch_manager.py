"""``CloudWatchComputeLogManager`` in this process: capture, ship while running, read back,
complete, list, delete, configure; against a moto server on loopback."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from dagster import DagsterEventType, job, op
from dagster._core.storage.compute_log_manager import ComputeIOType
from dagster._core.test_utils import instance_for_test
from support import wait_until

from dagster_logship import CloudWatchComputeLogManager, ConfigError
from dagster_logship.compute_logs.keys import joined
from dagster_logship.compute_logs.readback import is_marker
from dagster_logship.testing import read_events


def _manager(endpoint: str, tmp_path: Path, **kw: Any) -> CloudWatchComputeLogManager:
    kw.setdefault("log_group_name", f"/cl/{uuid.uuid4().hex[:8]}")
    return CloudWatchComputeLogManager(endpoint_url=endpoint, aws_region="us-east-1",
                                       local_dir=str(tmp_path / "local"), flush_interval=0.1,
                                       tail_interval=0.05, read_interval=0.01, **kw)


def _messages(manager: CloudWatchComputeLogManager, key: list[str], io: str) -> list[str]:
    """The lines CloudWatch holds for a stream (none while the group or stream is missing)."""
    try:
        events = read_events(manager.log_group_name, f"{joined(key)}/{io}",
                             endpoint_url=manager.endpoint_url, flush=False)
    except Exception as exc:
        if "ResourceNotFound" not in type(exc).__name__:
            raise
        return []
    return [e["message"] for e in events if not is_marker(e)]


def _stream_exists(manager: CloudWatchComputeLogManager, name: str) -> bool:
    client = boto3.client("logs", endpoint_url=manager.endpoint_url, region_name="us-east-1")
    try:
        streams = client.describe_log_streams(logGroupName=manager.log_group_name,
                                              logStreamNamePrefix=name)["logStreams"]
    except client.exceptions.ResourceNotFoundException:
        return False
    return any(s["logStreamName"] == name for s in streams)


@contextlib.contextmanager
def capture(manager: CloudWatchComputeLogManager, key: list[str],
            capfd: pytest.CaptureFixture[str]) -> Iterator[None]:
    """``manager.capture_logs(key)`` on the process's own fd 1 and 2, as in a step process.

    Under pytest's capture ``sys.stdout`` writes to another descriptor than 1, and Dagster
    captures the descriptor of ``sys.stdout``: a subprocess or ``os.write(1, ...)`` would miss
    the capture. (Dagster mirrors the captured lines to the terminal.)
    """
    with capfd.disabled(), manager.capture_logs(key):
        yield


def test_lines_arrive_while_the_capture_runs_and_all_of_them_at_its_end(
    moto_endpoint: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    manager = _manager(moto_endpoint, tmp_path)
    key = [f"run-{uuid.uuid4().hex[:6]}", "compute_logs", "abcdefgh"]
    with capture(manager, key, capfd):
        os.write(1, b"first line\n")
        # Shipped while the step still runs: not only at its end.
        assert wait_until(lambda: _messages(manager, key, "stdout") == ["first line"], 20)
        subprocess.run(["sh", "-c", "echo from sh; echo to err 1>&2"], check=True)
        print("no newline at the end", end="", flush=True)
        print("python err", file=sys.stderr, flush=True)
    assert _messages(manager, key, "stdout") == ["first line", "from sh", "no newline at the end"]
    assert _messages(manager, key, "stderr") == ["to err", "python err"]
    assert manager.is_capture_complete(key)
    data = manager.get_log_data(key)
    assert data.stdout == b"first line\nfrom sh\nno newline at the end"
    assert data.stderr == b"to err\npython err\n"
    assert data.cursor == f"{len(data.stdout)}:{len(data.stderr)}"


def test_another_process_reads_pages_and_sees_completion(moto_endpoint: str, tmp_path: Path,
                                                         capfd: pytest.CaptureFixture[str]) -> None:
    writer = _manager(moto_endpoint, tmp_path)
    key = ["r2", "compute_logs", "pagedkey"]
    lines = [f"line {i:03d} " + "x" * 20 for i in range(50)]
    with capture(writer, key, capfd):
        os.write(1, "".join(f"{line}\n" for line in lines).encode())
    # A manager that captured nothing (the webserver's) knows only what CloudWatch holds.
    reader = _manager(moto_endpoint, tmp_path, log_group_name=writer.log_group_name)
    assert reader.is_capture_complete(key)
    got, cursor = b"", 0
    while True:
        chunk, cursor = reader.get_log_data_for_type(key, ComputeIOType.STDOUT, cursor, 100)
        if not chunk:
            break
        assert len(chunk) <= 100
        got += chunk
    assert got.decode().splitlines() == lines
    assert reader.get_log_data_for_type(key, ComputeIOType.STDERR, 0, None) == (b"", 0)
    assert reader.get_log_data_for_type(["no", "such", "key"], ComputeIOType.STDOUT, 0,
                                        None) == (None, 0)
    assert not reader.is_capture_complete(["no", "such", "key"])


def test_subscription_gets_the_data_and_completes(moto_endpoint: str, tmp_path: Path,
                                                  capfd: pytest.CaptureFixture[str]) -> None:
    manager = _manager(moto_endpoint, tmp_path)
    key = ["r3", "compute_logs", "subkey"]
    with capture(manager, key, capfd):
        os.write(1, b"seen by a subscriber\n")
    reader = _manager(moto_endpoint, tmp_path, log_group_name=manager.log_group_name)
    received: list[Any] = []
    subscription = reader.subscribe(key)(received.append)
    assert subscription.is_complete
    assert received[0].stdout == b"seen by a subscriber\n"
    reader.unsubscribe(subscription)
    reader.dispose()


def test_tick_logs_through_open_log_stream(moto_endpoint: str, tmp_path: Path) -> None:
    manager = _manager(moto_endpoint, tmp_path)
    key = ["repo", "my_sensor", "20260101_120000"]
    with manager.open_log_stream(key, ComputeIOType.STDERR) as stream:
        assert stream is not None
        stream.write('{"msg": "one"}\n')
        assert wait_until(lambda: _messages(manager, key, "stderr") == ['{"msg": "one"}'], 20)
        stream.write('{"msg": "two"}\n')
    events = read_events(manager.log_group_name, f"{joined(key)}/stderr",
                         endpoint_url=moto_endpoint, flush=False)
    assert [(e["instigator"], e["tick"], e["repository"]) for e in events] == [
        ("my_sensor", "20260101_120000", "repo")] * 4
    assert events[0]["capture_started"] is True  # sent when the stream opened
    assert events[-1]["capture_complete"] is True
    assert manager.get_log_data(key).stderr == b'{"msg": "one"}\n{"msg": "two"}\n'


def test_keys_under_a_prefix_and_delete(moto_endpoint: str, tmp_path: Path) -> None:
    manager = _manager(moto_endpoint, tmp_path)
    keys = [["backfill", "b1", "20260101_000001"], ["backfill", "b1", "20260101_000002"]]
    for key in keys:
        with manager.open_log_stream(key, ComputeIOType.STDERR) as stream:
            assert stream is not None
            stream.write("x\n")
    assert sorted(manager.get_log_keys_for_log_key_prefix(
        ["backfill", "b1"], ComputeIOType.STDERR)) == keys
    assert manager.get_log_keys_for_log_key_prefix(["backfill", "b1"], ComputeIOType.STDOUT) == []
    manager.delete_logs(log_key=keys[0])
    assert not _stream_exists(manager, f"{joined(keys[0])}/stderr")
    assert manager.get_log_data(keys[0]).stderr is None
    manager.delete_logs(prefix=["backfill"])
    assert manager.get_log_keys_for_log_key_prefix(["backfill", "b1"], ComputeIOType.STDERR) == []


@op
def one() -> int:
    print("from one")
    return 1


@op
def two(value: int) -> None:
    print(f"from two {value}")


@job
def two_steps() -> None:
    two(one())


def test_the_in_process_executor_from_dagster_yaml(moto_endpoint: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CL_GROUP", "/cl/from-yaml")
    monkeypatch.setenv("CL_ENDPOINT", moto_endpoint)
    overrides = {"compute_logs": {
        "module": "dagster_logship", "class": "CloudWatchComputeLogManager",
        "config": {"log_group_name": {"env": "CL_GROUP"}, "endpoint_url": {"env": "CL_ENDPOINT"},
                   "aws_region": "us-east-1", "flush_interval": 0.1, "local_dir": str(tmp_path)}}}
    with instance_for_test(overrides=overrides) as instance:
        manager = instance.compute_log_manager
        assert isinstance(manager, CloudWatchComputeLogManager)
        assert manager.log_group_name == "/cl/from-yaml"
        result = two_steps.execute_in_process(instance=instance)
        assert result.success
        # One capture holds the whole run: its events name both steps, and no single one.
        (record,) = instance.all_logs(result.run_id, of_type=DagsterEventType.LOGS_CAPTURED)
        key = [result.run_id, "compute_logs", record.dagster_event.event_specific_data.file_key]
        events = read_events("/cl/from-yaml", f"{joined(key)}/stdout", endpoint_url=moto_endpoint,
                             flush=False)
        assert [e["message"] for e in events if not is_marker(e)] == [
            "from one", "from two 1"]
        assert {(e["job_name"], e["step_key"]) for e in events} == {("two_steps", None)}
        assert {tuple(e["step_keys"]) for e in events} == {("one", "two")}


def test_a_wrong_value_fails_at_instance_load_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="log_group_name"):
        CloudWatchComputeLogManager(log_group_name="aws/reserved", local_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="flush_interval"):
        CloudWatchComputeLogManager(log_group_name="/ok", flush_interval=-1)
    with pytest.raises(ConfigError, match="tail_interval"):
        CloudWatchComputeLogManager(log_group_name="/ok", tail_interval=0)
    with pytest.raises(TypeError, match="log_stream_name"):
        CloudWatchComputeLogManager(log_group_name="/ok", log_stream_name="x")  # type: ignore[call-arg]


def test_metadata_links_the_console_and_credentials_never_show(tmp_path: Path) -> None:
    manager = CloudWatchComputeLogManager(
        log_group_name="/prod/compute", aws_region="eu-west-1", aws_access_key_id="AKIDSECRETID",
        aws_secret_access_key="very-secret-key", local_dir=str(tmp_path))
    metadata = manager.get_log_metadata(["r", "compute_logs", "k"])
    assert metadata.stdout_download_url is not None
    assert metadata.stdout_download_url.startswith(
        "https://eu-west-1.console.aws.amazon.com/cloudwatch/home?region=eu-west-1#logsV2:")
    assert "r$252Fcompute_logs$252Fk$252Fstdout" in metadata.stdout_download_url
    assert metadata.stderr_location == ("CloudWatch Logs group /prod/compute, stream "
                                        "r/compute_logs/k/stderr")
    shown = repr(manager) + repr(metadata)
    assert "SECRET" not in shown and "secret" not in shown


def test_reads_from_an_unreachable_service_never_raise(tmp_path: Path) -> None:
    manager = CloudWatchComputeLogManager(log_group_name="/down", endpoint_url="http://127.0.0.1:9",
                                          aws_region="us-east-1", local_dir=str(tmp_path))
    started = time.monotonic()
    assert manager.get_log_data(["r", "compute_logs", "k"]).stdout is None
    assert not manager.is_capture_complete(["r", "compute_logs", "k"])
    assert manager.get_log_keys_for_log_key_prefix(["r"], ComputeIOType.STDOUT) == []
    manager.delete_logs(log_key=["r", "compute_logs", "k"])
    assert time.monotonic() - started < 60


def test_spills_to_stderr_go_around_the_capture_not_into_it(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """With the service down and no spill_path, spilled lines go to the stderr the process had
    before the capture: were they written into the captured stderr, the tailer would ship
    them again, and spill them again."""
    manager = CloudWatchComputeLogManager(
        log_group_name="/down", endpoint_url="http://127.0.0.1:9", aws_region="us-east-1",
        local_dir=str(tmp_path), retry_deadline=0.2, flush_timeout=5, tail_interval=0.05)
    key = ["r", "compute_logs", "spilling"]
    capfd.readouterr()
    with manager.capture_logs(key):
        print("going nowhere", flush=True)
        print("also nowhere", file=sys.stderr, flush=True)
    err = capfd.readouterr().err
    spilled = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert sorted(e["message"] for e in spilled if not is_marker(e)) == [
        "also nowhere", "going nowhere"]
    assert all(e["logship_spill"]["reason"] for e in spilled)
    # Two lines, and a start and an end marker per stream: nothing shipped twice.
    assert len(spilled) == 6
