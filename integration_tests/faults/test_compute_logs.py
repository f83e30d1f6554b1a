"""json_console_logger lines reach the process's real stdout even while Dagster captures the
step's compute logs.

Dagster's LocalComputeLogManager redirects fd 1 and 2 of a step process to files for the length
of the step and mirrors those files to the real stdout with a ``tail -F`` process that it
terminates when the step ends (dagster issue 23336). Under load the mirror is cut before it has
copied the end: that was the full-suite flake of test_json_console_jobs (the "last" step's
records missing). Here the mirror is starved on purpose — a ``tail`` on PATH that never copies
anything — and every record must still be on stdout, once.
"""

from __future__ import annotations

import collections
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from dagster import execute_job
from dagster._core.definitions.reconstruct import ReconstructableJob
from dagster._core.test_utils import instance_for_test
from faults_support import HERE

from dagster_logship.shipping import flush_all

JOBS = str(HERE / "faults_jobs.py")
NOT_ROUTED = {"STEP_WORKER_STARTED"}


@pytest.fixture
def starved_tail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tail = bin_dir / "tail"
    tail.write_text("#!/bin/sh\n# a mirror that never gets to copy anything\nexec sleep 600\n")
    tail.chmod(tail.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return bin_dir


def test_lines_bypass_a_starved_compute_log_mirror(
    starved_tail: Path, capfd: Any, no_secrets: Any
) -> None:
    run_config = {
        "loggers": {"json": {"config": {"log_level": "INFO", "flush_interval": 0.01}}},
        "execution": {"config": {"multiprocess": {"max_concurrent": 3}}},
    }
    with instance_for_test() as instance:
        result = execute_job(ReconstructableJob.for_file(JOBS, "fanout"), instance=instance,
                             run_config=run_config)
        assert result.success
        assert flush_all(30)
        want = collections.Counter(
            (e.step_key, e.user_message) for e in instance.all_logs(result.run_id)
            if e.level >= 20 and not (
                e.dagster_event and e.dagster_event.event_type.name in NOT_ROUTED)
        )
        # The lines were written while Dagster captured the steps' stdout.
        compute_logs = list(Path(instance.compute_log_manager._base_dir).rglob("*.out"))
    out = capfd.readouterr().out
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    mine = [e for e in lines if e.get("run_id") == result.run_id]
    got = collections.Counter((e["step_key"], e["message"]) for e in mine)
    assert got == want
    for step in ("extract", "transform", "audit"):
        assert got[(step, f"{step} record 39")] == 1
    assert compute_logs  # Dagster did capture (and its mirror copied nothing)
