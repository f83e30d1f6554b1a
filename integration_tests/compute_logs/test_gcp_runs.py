"""Steps' stdout/stderr in Cloud Logging through ``GcpComputeLogManager``: a multiprocess run
against the bundled fake server, and the lines read back through the manager's API."""

from __future__ import annotations

import json
from pathlib import Path

from cl_jobs import expected_stderr, expected_stdout
from cl_support import gcp_compute_logs, run_job, step_log_keys
from dagster._core.storage.compute_log_manager import ComputeIOType
from dagster._core.test_utils import instance_for_test

from dagster_logship.compute_logs.keys import joined
from dagster_logship.compute_logs.readback import is_marker
from dagster_logship.testing import FakeCloudLogging


def _ours(entries: list[dict], log_key: list[str], stream: str) -> list[dict]:
    return sorted(
        (e for e in entries if e.get("labels", {}).get("log_key") == joined(log_key)
         and e["labels"].get("stream") == stream
         and not is_marker(e["jsonPayload"])),
        key=lambda e: e["jsonPayload"]["offset"])


def test_multiprocess_run_lines_arrive_and_read_back(gcp_server: FakeCloudLogging) -> None:
    config = gcp_compute_logs(gcp_server.url)
    with instance_for_test(overrides={"compute_logs": config}) as instance:
        result = run_job(instance, "chatty")
        assert result.success
        keys = step_log_keys(instance, result.run_id)
        entries = gcp_server.entries()
        stdout = _ours(entries, keys["chatter"], "stdout")
        assert [e["jsonPayload"]["message"] for e in stdout] == expected_stdout()
        stderr = [e["jsonPayload"]["message"] for e in _ours(entries, keys["chatter"], "stderr")]
        assert [m for m in stderr if m.startswith(("chatter stderr", "sub stderr"))] == \
            expected_stderr()
        for entry in stdout:
            assert entry["logName"] == "projects/test-project/logs/dagster-compute-logs"
            assert entry["labels"]["run_id"] == result.run_id
            assert entry["labels"]["step_key"] == "chatter"
            assert entry["jsonPayload"]["job_name"] == "chatty"
            assert entry["insertId"].endswith(f"-stdout-{entry['jsonPayload']['offset']}")
        # Read back from the server by a manager that captured nothing itself (the UI's).
        manager = instance.compute_log_manager
        data, offset = manager.get_log_data_for_type(
            keys["chatter"], ComputeIOType.STDOUT, 0, None)
        assert data == "".join(f"{line}\n" for line in expected_stdout()).encode()
        pages, cursor = [], 0
        while True:
            chunk, cursor = manager.get_log_data_for_type(
                keys["chatter"], ComputeIOType.STDOUT, cursor, 64)
            if not chunk:
                break
            pages.append(chunk)
        assert b"".join(pages) == data and len(pages) > 5 and cursor == offset
        assert manager.is_capture_complete(keys["chatter"])
        second = manager.get_log_data(keys["second"])
        assert second.stdout == b"second got 1\n"


def test_unreachable_endpoint_the_run_succeeds_and_lines_spill(tmp_path: Path) -> None:
    spill = tmp_path / "spill.jsonl"
    config = gcp_compute_logs("http://127.0.0.1:9", spill_path=str(spill), retry_deadline=0.5,
                              flush_timeout=5)
    with instance_for_test(overrides={"compute_logs": config}) as instance:
        result = run_job(instance, "chatty")
    assert result.success
    spilled = [json.loads(line) for line in spill.read_text().splitlines()]
    stdout = [e["message"] for e in spilled if e.get("stream") == "stdout"
              and e.get("step_key") == "chatter" and not is_marker(e)]
    assert stdout == expected_stdout()
    assert all(e["logship_spill"]["reason"] for e in spilled)
