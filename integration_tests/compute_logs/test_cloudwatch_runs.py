"""Steps' stdout/stderr in CloudWatch through ``CloudWatchComputeLogManager``, in real runs of
the multiprocess executor (each step its own process), read back the way the UI reads them."""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from cl_jobs import expected_stderr, expected_stdout
from cl_support import (
    JOBS,
    cloudwatch_compute_logs,
    graphql_captured_logs,
    graphql_file_key,
    run_job,
    step_log_keys,
    wait_for,
)
from dagster._core.test_utils import instance_for_test

from dagster_logship.compute_logs.keys import joined
from dagster_logship.compute_logs.readback import is_marker
from dagster_logship.testing import read_events

GROUP = "/dagster/compute-logs-test"
#: Given in the config (not the environment): the module's run outlives function fixtures.
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def _events(endpoint: str, group: str, stream: str) -> list[dict[str, Any]]:
    return read_events(group, stream, endpoint_url=endpoint, flush=False)


@pytest.fixture(scope="module")
def chatty_run(moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One run of ``chatty`` on an instance whose dagster.yaml sets our manager."""
    local = tmp_path_factory.mktemp("captures")
    config = cloudwatch_compute_logs(moto_endpoint, GROUP, local_dir=str(local), **CREDENTIALS)
    with instance_for_test(overrides={"compute_logs": config}) as instance:
        result = run_job(instance, "chatty")
        yield instance, result, local


def test_every_line_is_in_cloudwatch_with_its_step_and_stream(
    chatty_run: Any, moto_endpoint: str
) -> None:
    instance, result, local = chatty_run
    assert result.success
    keys = step_log_keys(instance, result.run_id)
    assert set(keys) == {"chatter", "second"}
    for io_name, want in (("stdout", expected_stdout()), ("stderr", expected_stderr())):
        stream = f"{joined(keys['chatter'])}/{io_name}"
        events = _events(moto_endpoint, GROUP, stream)
        lines = [e for e in events if not is_marker(e)]
        markers = [e for e in events if e.get("capture_complete")]
        messages = [e["message"] for e in lines]
        if io_name == "stdout":
            assert messages == want  # stdout holds only what the op printed: all of it, once
        else:  # Dagster's own console lines share stderr with ours; ours are there in order
            assert [m for m in messages if m.startswith(("chatter stderr", "sub stderr"))] == want
        for event in lines:
            assert event["run_id"] == result.run_id
            assert event["job_name"] == "chatty"
            assert event["step_key"] == "chatter"
            assert event["stream"] == io_name
            assert event["log_key"] == joined(keys["chatter"])
            assert event["logger"] == "dagster.compute_logs"
        # Offsets lay the pieces end to end from 0: nothing missing, nothing twice.
        offsets = [e["offset"] for e in lines]
        assert offsets[0] == 0
        assert all(b["offset"] == a["offset"] + a["length"] for a, b in pairwise(lines))
        end = lines[-1]["offset"] + lines[-1]["length"]
        assert len(markers) == 1 and markers[0]["offset"] == end
    second = _events(moto_endpoint, GROUP, f"{joined(keys['second'])}/stdout")
    assert [e["message"] for e in second if not is_marker(e)] == ["second got 1"]
    assert {e["step_key"] for e in second} == {"second"}
    # The capture files were deleted once shipped.
    assert [p for p in local.rglob("*") if p.is_file() and p.suffix in (".out", ".err")] == []


def test_the_ui_reads_the_lines_back_from_cloudwatch_page_by_page(chatty_run: Any) -> None:
    from dagster_graphql.test.utils import define_out_of_process_context

    instance, result, _ = chatty_run
    with define_out_of_process_context(JOBS, "chatty", instance) as context:
        file_key = graphql_file_key(context, result.run_id, "chatter")
        log_key = [result.run_id, "compute_logs", file_key]
        stdout, stderr, pages, metadata = graphql_captured_logs(context, log_key, 100)
    assert pages > 5  # paged by the limit, not in one piece
    assert stdout == "".join(f"{line}\n" for line in expected_stdout())
    assert [line for line in stderr.splitlines()
            if line.startswith(("chatter stderr", "sub stderr"))] == expected_stderr()
    stream = f"{result.run_id}/compute_logs/{file_key}/stdout"
    assert GROUP in metadata["stdoutLocation"] and stream in metadata["stdoutLocation"]
    # Its endpoint is moto's: AWS's console would not show it, so no link.
    assert metadata["stdoutDownloadUrl"] is None


def test_lines_printed_before_sigterm_are_delivered(
    moto_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ready = tmp_path / "ready"
    monkeypatch.setenv("CL_READY_FILE", str(ready))
    group = "/dagster/compute-logs-sigterm"
    # Nothing would be sent before the step ends: batches wait 60 s, the file is read every 30 s.
    config = cloudwatch_compute_logs(moto_endpoint, group, flush_interval=60, tail_interval=30,
                                     flush_timeout=20)
    with instance_for_test(overrides={"compute_logs": config}) as instance:
        outcome: dict[str, Any] = {}
        runner = threading.Thread(
            target=lambda: outcome.update(result=run_job(instance, "terminated")), daemon=True)
        runner.start()
        pid = int(wait_for(lambda: ready.exists() and ready.read_text(), 30, "the step to start"))
        os.kill(pid, signal.SIGTERM)
        runner.join(30)
        assert not runner.is_alive()
        result = outcome["result"]
        assert not result.success  # the step was terminated
        key = step_log_keys(instance, result.run_id)["doomed"]
        out = _events(moto_endpoint, group, f"{joined(key)}/stdout")
        err = _events(moto_endpoint, group, f"{joined(key)}/stderr")
    assert [e["message"] for e in out if not is_marker(e)] == [
        f"before the end {i}" for i in range(5)]
    assert "and on stderr" in [e["message"] for e in err]
    assert any(e.get("capture_complete") for e in out)


def test_the_service_down_the_run_succeeds_and_lines_spill_with_a_reason(
    tmp_path: Path,
) -> None:
    spill = tmp_path / "spill.jsonl"
    # Nothing listens on port 9 of loopback: every connection is refused.
    config = cloudwatch_compute_logs("http://127.0.0.1:9", "/dagster/down", spill_path=str(spill),
                                     retry_deadline=0.5, flush_timeout=5)
    with instance_for_test(overrides={"compute_logs": config}) as instance:
        result = run_job(instance, "chatty")
    assert result.success
    spilled = [json.loads(line) for line in spill.read_text().splitlines()]
    stdout = [e for e in spilled if e.get("stream") == "stdout" and e.get("step_key") == "chatter"
              and not is_marker(e)]
    assert [e["message"] for e in stdout] == expected_stdout()
    reasons = {e["logship_spill"]["reason"] for e in spilled}
    assert reasons and all(reasons)
    assert all("127.0.0.1:9" in e["logship_spill"]["destination"] or "/dagster/down"
               in e["logship_spill"]["destination"] for e in spilled)
    assert "testing" not in spill.read_text()  # no credential in the spill file
