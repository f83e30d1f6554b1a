"""Helpers of the compute log tests: instance config, running a job, finding its log keys."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dagster import DagsterInstance, execute_job
from dagster._core.definitions.reconstruct import ReconstructableJob
from dagster._core.events import DagsterEventType

HERE = Path(__file__).resolve().parent
JOBS = str(HERE / "cl_jobs.py")


def cloudwatch_compute_logs(endpoint: str, group: str, **config: Any) -> dict[str, Any]:
    """The ``compute_logs`` block of an instance using our CloudWatch manager."""
    return {
        "module": "dagster_logship",
        "class": "CloudWatchComputeLogManager",
        "config": {"log_group_name": group, "endpoint_url": endpoint, "aws_region": "us-east-1",
                   "flush_interval": 0.2, **config},
    }


def gcp_compute_logs(url: str, **config: Any) -> dict[str, Any]:
    return {
        "module": "dagster_logship",
        "class": "GcpComputeLogManager",
        "config": {"project": "test-project", "api_endpoint": url, "flush_interval": 0.2,
                   **config},
    }


def run_job(instance: DagsterInstance, name: str) -> Any:
    return execute_job(ReconstructableJob.for_file(JOBS, name), instance=instance)


def step_log_keys(instance: DagsterInstance, run_id: str) -> dict[str, list[str]]:
    """The log key of each step, from the run's LOGS_CAPTURED events (what the UI reads)."""
    keys: dict[str, list[str]] = {}
    for record in instance.all_logs(run_id, of_type=DagsterEventType.LOGS_CAPTURED):
        event = record.dagster_event
        assert event is not None
        data: Any = event.event_specific_data
        for step in data.step_keys:
            keys[step] = [run_id, "compute_logs", data.file_key]
    return keys


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``condition`` until it is truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


# -- the webserver's GraphQL reads (what the UI calls) -----------------------------------------

CAPTURED_KEYS = """
query Captured($runId: ID!) {
  logsForRun(runId: $runId) {
    __typename
    ... on EventConnection { events { __typename
      ... on LogsCapturedEvent { fileKey stepKeys } } }
  }
}
"""

CAPTURED_LOGS = """
query Logs($logKey: [String!]!, $cursor: String, $limit: Int) {
  capturedLogs(logKey: $logKey, cursor: $cursor, limit: $limit) { stdout stderr cursor }
  capturedLogsMetadata(logKey: $logKey) { stdoutLocation stderrLocation stdoutDownloadUrl }
}
"""


def graphql_file_key(context: Any, run_id: str, step_key: str) -> str:
    """The file key of the capture holding ``step_key`` alone, from the run's events."""
    from dagster_graphql.test.utils import execute_dagster_graphql

    found = execute_dagster_graphql(context, CAPTURED_KEYS, {"runId": run_id})
    assert found.errors is None, found.errors
    events = found.data["logsForRun"]["events"]
    return str(next(e["fileKey"] for e in events
                    if e["__typename"] == "LogsCapturedEvent" and e["stepKeys"] == [step_key]))


def graphql_captured_logs(
    context: Any, log_key: list[str], limit: int
) -> tuple[str, str, int, dict[str, Any]]:
    """``capturedLogs`` paged by ``limit`` until a page brings nothing: stdout, stderr, the
    number of pages, and ``capturedLogsMetadata``. Each page's stdout is at most ``limit``
    bytes."""
    from dagster_graphql.test.utils import execute_dagster_graphql

    stdout, stderr, cursor, pages = "", "", None, 0
    while True:
        page = execute_dagster_graphql(
            context, CAPTURED_LOGS, {"logKey": log_key, "cursor": cursor, "limit": limit})
        assert page.errors is None, page.errors
        logs = page.data["capturedLogs"]
        if not logs["stdout"] and not logs["stderr"]:
            return stdout, stderr, pages, page.data["capturedLogsMetadata"]
        assert len((logs["stdout"] or "").encode()) <= limit
        stdout += logs["stdout"] or ""
        stderr += logs["stderr"] or ""
        cursor, pages = logs["cursor"], pages + 1
