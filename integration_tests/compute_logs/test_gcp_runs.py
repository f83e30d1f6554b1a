"""Steps' stdout/stderr in Cloud Logging through ``GcpComputeLogManager``: a multiprocess run
against the bundled fake server, and the lines read back through the manager's API and through
the webserver's GraphQL API (what the UI calls)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cl_jobs import expected_stderr, expected_stdout
from cl_support import (
    JOBS,
    gcp_compute_logs,
    graphql_captured_logs,
    graphql_file_key,
    run_job,
    step_log_keys,
)
from dagster._core.storage.compute_log_manager import ComputeIOType
from dagster._core.test_utils import instance_for_test
from support import offline_cloud_env

from dagster_logship.compute_logs.keys import joined
from dagster_logship.compute_logs.readback import is_marker
from dagster_logship.testing import FakeCloudLogging


def _ours(entries: list[dict[str, Any]], log_key: list[str], stream: str) -> list[dict[str, Any]]:
    return sorted(
        (e for e in entries if e.get("labels", {}).get("log_key") == joined(log_key)
         and e["labels"].get("stream") == stream
         and not is_marker(e["jsonPayload"])),
        key=lambda e: e["jsonPayload"]["offset"])


@pytest.fixture(scope="module")
def chatty_run(
    gcp_server: FakeCloudLogging, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Any, Any, str]]:
    """One run of ``chatty`` on an instance whose dagster.yaml sets our manager; its home is
    given too, for a second instance over the same storage (the webserver's)."""
    home = str(tmp_path_factory.mktemp("home"))
    with pytest.MonkeyPatch.context() as monkeypatch:  # the module's run outlives offline_env
        offline_cloud_env(monkeypatch, tmp_path_factory.mktemp("env"))
        config = gcp_compute_logs(gcp_server.url)
        with instance_for_test(overrides={"compute_logs": config}, temp_dir=home) as instance:
            result = run_job(instance, "chatty")
            yield instance, result, home


def test_multiprocess_run_lines_arrive_and_read_back(
    chatty_run: tuple[Any, Any, str], gcp_server: FakeCloudLogging
) -> None:
    instance, result, _ = chatty_run
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


def test_the_ui_reads_the_lines_back_from_cloud_logging_page_by_page(
    chatty_run: tuple[Any, Any, str], gcp_server: FakeCloudLogging
) -> None:
    from dagster import DagsterInstance
    from dagster_graphql.test.utils import define_out_of_process_context

    _, result, home = chatty_run
    assert result.success
    listed_before = len(gcp_server.list_requests())
    # The webserver's own instance over the run's storage: its manager captured nothing and has
    # read nothing yet, so every line comes from the server.
    with DagsterInstance.from_config(home) as ui_instance, \
            define_out_of_process_context(JOBS, "chatty", ui_instance) as context:
        file_key = graphql_file_key(context, result.run_id, "chatter")
        log_key = [result.run_id, "compute_logs", file_key]
        stdout, stderr, pages, metadata = graphql_captured_logs(context, log_key, 100)
    assert pages > 5  # paged by the limit, not in one piece
    assert stdout == "".join(f"{line}\n" for line in expected_stdout())
    assert [line for line in stderr.splitlines()
            if line.startswith(("chatter stderr", "sub stderr"))] == expected_stderr()
    # Both streams were listed from the server, each once or twice (a re-listing when it had a
    # hole), not once per page: Cloud Logging allows 60 list calls a minute per project.
    filters = [r["body"]["filter"] for r in gcp_server.list_requests()[listed_before:]]
    for io_name in ("stdout", "stderr"):
        ours = [f for f in filters if f'labels.log_key="{joined(log_key)}"' in f
                and f'labels.stream="{io_name}"' in f]
        assert 1 <= len(ours) <= 2, filters
    assert metadata["stdoutLocation"] == (
        "Cloud Logging projects/test-project/logs/dagster-compute-logs, labels "
        f"log_key={joined(log_key)} stream=stdout at {gcp_server.url}")
    # The endpoint is the fake server's: Google's console would not show it, so no link.
    assert metadata["stdoutDownloadUrl"] is None


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
