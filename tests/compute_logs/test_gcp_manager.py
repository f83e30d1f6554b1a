"""``GcpComputeLogManager`` in this process against the bundled fake Cloud Logging server:
capture, labels and insertIds, read back by another manager, ticks, listing, configuration."""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from dagster._core.storage.compute_log_manager import ComputeIOType
from dagster._core.test_utils import instance_for_test

from dagster_logship import ConfigError, GcpComputeLogManager
from dagster_logship.compute_logs.keys import joined
from dagster_logship.compute_logs.readback import is_marker
from dagster_logship.testing import FakeCloudLogging


def _manager(server: FakeCloudLogging, tmp_path: Path, **kw: Any) -> GcpComputeLogManager:
    kw.setdefault("log_name", f"compute-{uuid.uuid4().hex[:8]}")
    return GcpComputeLogManager(project="test-project", api_endpoint=server.url,
                                local_dir=str(tmp_path / "local"), flush_interval=0.1,
                                tail_interval=0.05, read_interval=0.01, **kw)


def test_a_capture_is_shipped_with_labels_and_read_back_elsewhere(
    gcp_server: FakeCloudLogging, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    writer = _manager(gcp_server, tmp_path)
    key = [f"run-{uuid.uuid4().hex[:6]}", "compute_logs", "abcdefgh"]
    with capfd.disabled(), writer.capture_logs(key):
        os.write(1, b"hello gcp\nsecond line\n")
        os.write(2, b"an error line\n")
    mine = [e for e in gcp_server.entries() if e.get("labels", {}).get("log_key") == joined(key)]
    lines = [e for e in mine if not is_marker(e["jsonPayload"])]
    assert sorted((e["labels"]["stream"], e["jsonPayload"]["message"]) for e in lines) == [
        ("stderr", "an error line"), ("stdout", "hello gcp"), ("stdout", "second line")]
    assert all(e["labels"]["run_id"] == key[0] for e in mine)
    assert all(e["logName"] == f"projects/test-project/logs/{writer.log_name}" for e in mine)
    assert len({e["insertId"] for e in mine}) == len(mine)  # one id per piece and marker
    reader = _manager(gcp_server, tmp_path, log_name=writer.log_name)
    assert reader.is_capture_complete(key)
    data = reader.get_log_data(key)
    assert (data.stdout, data.stderr) == (b"hello gcp\nsecond line\n", b"an error line\n")
    assert reader.get_log_data_for_type(key, ComputeIOType.STDOUT, 10, 5) == (b"secon", 15)


def test_ticks_and_keys_under_a_prefix(gcp_server: FakeCloudLogging, tmp_path: Path) -> None:
    manager = _manager(gcp_server, tmp_path)
    keys = [["repo", "sensor_a", "20260101_000001"], ["repo", "sensor_a", "20260101_000002"]]
    for key in keys:
        with manager.open_log_stream(key, ComputeIOType.STDERR) as stream:
            assert stream is not None
            stream.write('{"msg": "tick"}\n')
    reader = _manager(gcp_server, tmp_path, log_name=manager.log_name)
    assert reader.get_log_data(keys[1]).stderr == b'{"msg": "tick"}\n'
    assert sorted(reader.get_log_keys_for_log_key_prefix(["repo", "sensor_a"],
                                                         ComputeIOType.STDERR)) == keys


def test_delete_cannot_delete_entries_and_says_so(
    gcp_server: FakeCloudLogging, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    manager = _manager(gcp_server, tmp_path)
    with caplog.at_level(logging.WARNING):
        manager.delete_logs(log_key=["r", "compute_logs", "k"])
    assert "cannot delete single entries" in caplog.text


def test_metadata_links_the_console_query(tmp_path: Path) -> None:
    manager = GcpComputeLogManager(project="my-proj", local_dir=str(tmp_path))
    metadata = manager.get_log_metadata(["r", "compute_logs", "k"])
    assert metadata.stdout_download_url is not None
    assert metadata.stdout_download_url.startswith(
        "https://console.cloud.google.com/logs/query;query=logName%3D%22projects%2Fmy-proj")
    assert metadata.stdout_download_url.endswith("?project=my-proj")
    assert metadata.stdout_location == ("Cloud Logging projects/my-proj/logs/dagster-compute-logs, "
                                        "labels log_key=r/compute_logs/k stream=stdout")


def test_config_from_dagster_yaml_and_wrong_values(gcp_server: FakeCloudLogging,
                                                   tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CL_PROJECT", "env-project")
    overrides = {"compute_logs": {"module": "dagster_logship", "class": "GcpComputeLogManager",
                                  "config": {"project": {"env": "CL_PROJECT"},
                                             "api_endpoint": gcp_server.url,
                                             "labels": {"team": "data"},
                                             "local_dir": str(tmp_path)}}}
    with instance_for_test(overrides=overrides) as instance:
        manager = instance.compute_log_manager
        assert isinstance(manager, GcpComputeLogManager)
        assert manager.project == "env-project"
    with pytest.raises(ConfigError, match="log_name"):
        GcpComputeLogManager(project="p", log_name="bad name!", local_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="overflow"):
        GcpComputeLogManager(project="p", overflow="explode", local_dir=str(tmp_path))
