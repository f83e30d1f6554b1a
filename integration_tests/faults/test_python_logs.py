"""Dagster capturing Python loggers at DEBUG, the root logger included
(``python_logs.managed_python_loggers`` in dagster.yaml), while our loggers ship through boto3
and google-cloud-logging: no recursion, no deadlock, and none of the SDKs' own records about
our requests in any output (they would carry request headers, the session token among them)."""

from __future__ import annotations

import collections
import time
import uuid
from pathlib import Path
from typing import Any

from dagster import execute_job
from dagster._core.definitions.reconstruct import ReconstructableJob
from dagster._core.test_utils import instance_for_test
from faults_support import HERE, SECRETS, moto_events

from dagster_logship.shipping import flush_all

JOBS = str(HERE / "faults_jobs.py")
SDK_LOGGERS = ("botocore", "boto3", "urllib3", "google", "requests", "s3transfer")


def test_root_logger_captured_at_debug(
    moto_endpoint: str, fresh_gcp_server: Any, tmp_path: Path, capfd: Any, no_secrets: Any,
    figures: Any,
) -> None:
    group = f"/faults/python-logs/{uuid.uuid4().hex[:8]}"
    overrides = {"python_logs": {
        "managed_python_loggers": ["root", "botocore", "urllib3", "google", "dagster_logship"],
        "python_log_level": "DEBUG",
    }}
    common = {"log_level": "DEBUG", "flush_interval": 0.05, "flush_timeout": 20,
              "spill_path": str(tmp_path / "spill.jsonl")}
    run_config = {
        "loggers": {
            "cloudwatch": {"config": {**common, "log_group_name": group,
                                      "aws_region": "us-east-1", "endpoint_url": moto_endpoint}},
            "gcp": {"config": {**common, "project": "faults", "log_name": "python-logs",
                               "api_endpoint": fresh_gcp_server.url}},
        },
        "execution": {"config": {"multiprocess": {"max_concurrent": 3}}},
    }
    started = time.monotonic()
    with instance_for_test(overrides=overrides) as instance:
        result = execute_job(ReconstructableJob.for_file(JOBS, "fanout"), instance=instance,
                             run_config=run_config)
        seconds = time.monotonic() - started
        assert result.success
        assert flush_all(30)
        logged = list(instance.all_logs(result.run_id))
    assert seconds < 120  # no deadlock (and no retry storm of records about records)
    cloudwatch = [e for e in moto_events(moto_endpoint, group) if e["run_id"] == result.run_id]
    gcp = [e["jsonPayload"] for e in fresh_gcp_server.entries()
           if e["jsonPayload"]["run_id"] == result.run_id]
    for shipped in (cloudwatch, gcp):
        ids = [e["log_message_id"] for e in shipped]
        assert len(ids) == len(set(ids))  # no record came back to us
        assert not [e for e in shipped if e["logger"].startswith(SDK_LOGGERS)]
        messages = collections.Counter(e["message"] for e in shipped)
        for op in ("extract", "transform", "audit"):
            assert messages[f"{op} record 39"] == 1
    # Nothing Dagster captured from the root logger came from our sending either: the SDKs'
    # DEBUG lines about our requests hold request headers.
    sdk_lines = [e.user_message for e in logged
                 if "PutLogEvents" in e.user_message or "entries:write" in e.user_message
                 or "Sending http request" in e.user_message]
    assert not sdk_lines, sdk_lines[:3]
    dump = "\n".join(e.user_message for e in logged)
    assert SECRETS["token"] not in dump and SECRETS["access_key"] not in dump
    figures(run_seconds=round(seconds, 1), shipped_cloudwatch=len(cloudwatch),
            shipped_gcp=len(gcp), dagster_event_log_entries=len(logged))
