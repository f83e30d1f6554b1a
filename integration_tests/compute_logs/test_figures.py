"""Figures for the report: lines shipped, delay from ``print`` to CloudWatch (p50/p95 over a
run) with the default timings, and the time from an op's return to its run's success with our
manager against Dagster's local one (the baseline).

``CL_FIGURE_RUNS`` repeats each run (1 by default); ``CL_FIGURE_FLUSH_INTERVAL`` replaces the
default batching window; the figures are printed and, with ``LOGSHIP_COMPUTE_FIGURES`` set,
appended to that file as a JSON line. The assertions are loose bounds that still catch a
regression in kind (lines missing, delivery only at the step's end, a step that waits for its
timeout).
"""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path
from typing import Any

import pytest
from cl_support import cloudwatch_compute_logs, run_job, step_log_keys
from dagster import DagsterEventType
from dagster._core.test_utils import instance_for_test

from dagster_logship.compute_logs.keys import joined
from dagster_logship.compute_logs.readback import is_marker
from dagster_logship.testing import read_raw_events

LINES = 40


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _exit_time(instance: Any, run_id: str, returned: Path) -> float:
    """Seconds from the op's return to the run's RUN_SUCCESS (the step process's teardown and
    exit, and the executor noticing)."""
    (success,) = instance.all_logs(run_id, of_type=DagsterEventType.RUN_SUCCESS)
    return float(success.timestamp) - float(returned.read_text())


def _baseline(overrides: dict[str, Any], returned: Path) -> float:
    with instance_for_test(overrides=overrides) as instance:
        result = run_job(instance, "stamping")
        assert result.success
        return _exit_time(instance, result.run_id, returned)


def test_figures(moto_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    returned = tmp_path / "returned"
    monkeypatch.setenv("CL_STAMPED_LINES", str(LINES))
    monkeypatch.setenv("CL_RETURNED_FILE", str(returned))
    runs = int(os.environ.get("CL_FIGURE_RUNS", "1"))
    group = "/dagster/figures"
    ours = cloudwatch_compute_logs(moto_endpoint, group)
    ours["config"].pop("flush_interval")  # the defaults: flush_interval 2.0, tail_interval 0.2
    if os.environ.get("CL_FIGURE_FLUSH_INTERVAL"):
        ours["config"]["flush_interval"] = float(os.environ["CL_FIGURE_FLUSH_INTERVAL"])
    local = {"module": "dagster.core.storage.local_compute_log_manager",
             "class": "LocalComputeLogManager", "config": {"base_dir": str(tmp_path / "local")}}
    delays: list[float] = []
    shipped = 0
    exit_ours: list[float] = []
    exit_local: list[float] = []
    for _ in range(runs):
        exit_local.append(_baseline({"compute_logs": local}, returned))
        with instance_for_test(overrides={"compute_logs": ours}) as instance:
            result = run_job(instance, "stamping")
            assert result.success
            exit_ours.append(_exit_time(instance, result.run_id, returned))
            key = step_log_keys(instance, result.run_id)["stamped"]
            events = read_raw_events(group, f"{joined(key)}/stdout", endpoint_url=moto_endpoint,
                                     flush=False)
        lines = [json.loads(e["message"]) | {"ingested": e["ingestionTime"] / 1000}
                 for e in events]
        lines = [e for e in lines if not is_marker(e)]
        assert [e["message"].split()[1] for e in lines] == [str(i) for i in range(LINES)]
        shipped += len(lines)
        delays += [e["ingested"] - float(e["message"].split()[2]) for e in lines]
    figures = {
        "lines_shipped": shipped,
        "delay_p50_s": round(_percentile(delays, 0.5), 3),
        "delay_p95_s": round(_percentile(delays, 0.95), 3),
        "delay_max_s": round(max(delays), 3),
        "exit_local_s": round(statistics.median(exit_local), 3),
        "exit_ours_s": round(statistics.median(exit_ours), 3),
        "runs": runs,
        "flush_interval": ours["config"].get("flush_interval", 2.0),
    }
    print("compute log figures:", json.dumps(figures))
    if os.environ.get("LOGSHIP_COMPUTE_FIGURES"):
        with open(os.environ["LOGSHIP_COMPUTE_FIGURES"], "a") as out:
            out.write(json.dumps(figures) + "\n")
    # Lines arrive while the step runs (it prints for ~2 s): within a batch window and a tail
    # interval, not at its end; and the step does not wait long for us when it ends.
    assert figures["delay_p95_s"] < 2.0 + 0.2 + 2.0
    assert figures["exit_ours_s"] < figures["exit_local_s"] + 5.0
