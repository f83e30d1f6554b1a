"""A launch from the UI's launchpad: the GraphQL mutation the webserver runs when a user presses
"Launch Run", here with the launchpad's config editor emptied to ``{}``.

The README's first example (examples/hello_logs.py) is loaded as ``dagster dev`` loads it (a
code server process), the run is launched by the instance's run launcher in its own process, as
in a deployment, and what it logged is read back from the moto server: the silent fallback to
Dagster's console does not happen.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterRunStatus
from dagster._core.test_utils import instance_for_test
from dagster_graphql.client.query import LAUNCH_PIPELINE_EXECUTION_MUTATION
from dagster_graphql.test.utils import (
    define_out_of_process_context,
    execute_dagster_graphql,
    infer_job_selector,
)
from logship_cli_support import EXAMPLES, logs_client

from dagster_logship.testing import read_events

ERROR_LINE = "Something to page about: 3 rows failed validation"
FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


def _wait_finished(instance: Any, run_id: str, timeout: float = 120.0) -> Any:
    """The run once it has finished (polled: the run launcher gives no signal here)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        run = instance.get_run_by_id(run_id)
        if run is not None and run.status in FINISHED:
            return run
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} not finished after {timeout:g}s: {run and run.status}")


def test_launchpad_with_empty_config_ships_the_first_example(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The code server and the run process inherit this environment: moto for CloudWatch Logs.
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", moto_endpoint)
    # Launched at once (the queued coordinator of `dagster dev` needs its daemon to dequeue).
    coordinator = {"module": "dagster._core.run_coordinator", "class": "DefaultRunCoordinator"}
    with instance_for_test(
        temp_dir=str(tmp_path), overrides={"run_coordinator": coordinator}
    ) as instance, define_out_of_process_context(
        str(EXAMPLES / "hello_logs.py"), "defs", instance
    ) as context:
        result = execute_dagster_graphql(
            context,
            LAUNCH_PIPELINE_EXECUTION_MUTATION,
            variables={"executionParams": {
                "selector": infer_job_selector(context, "prod_logs"),
                "runConfigData": {},
                "mode": "default",
            }},
        )
        launched = result.data["launchPipelineExecution"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        run_id = launched["run"]["runId"]
        run = _wait_finished(instance, run_id)
        assert run.status == DagsterRunStatus.SUCCESS
    events = read_events("/my/cool/cloudwatch/log/group", "very_good_log_stream",
                         client=logs_client(moto_endpoint, "us-west-2"), flush=False)
    assert [e["message"] for e in events if e.get("run_id") == run_id] == [ERROR_LINE]
