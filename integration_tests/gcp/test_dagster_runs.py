"""Real Dagster runs with gcp_logger against the fake Cloud Logging server: every record at the
configured level arrives exactly once (by insertId), also while the server injects 429s, 5xx
and per-entry errors; in-process and with the multiprocess executor."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from dagster import DagsterInstance, execute_job, reconstructable
from dagster._core.test_utils import instance_for_test
from logship_gcp_jobs import BIG_MESSAGE, gcp_etl

from dagster_logship.testing import FakeCloudLogging

# Written to the event log by the step process itself before its loggers exist, so they never
# reach any run logger (Dagster prints them with its default console logger).
NOT_LOGGED_BY_STEP_PROCESSES = frozenset({"STEP_WORKER_STARTED"})


def test_in_process_every_record_once(
    fresh_gcp_server: FakeCloudLogging, instance: DagsterInstance, it: Any, tmp_path: Path
) -> None:
    result = gcp_etl.execute_in_process(
        run_config=it.logger_config(fresh_gcp_server, tmp_path / "spill"), instance=instance
    )
    assert result.success
    it.flush_here()
    entries = it.check_exactly_once(fresh_gcp_server, instance, result.run_id)
    parts = [e for e in entries if "part" in e["jsonPayload"]]  # BIG_MESSAGE, reassembled above
    assert len(parts) >= 2 and len(BIG_MESSAGE.encode()) > 256 * 1024
    assert any(e["jsonPayload"].get("chunk") == 4 for e in entries)  # extra= fields kept
    assert not (tmp_path / "spill").exists()


def test_in_process_at_info_with_faults(
    fresh_gcp_server: FakeCloudLogging, instance: DagsterInstance, it: Any, tmp_path: Path
) -> None:
    it.inject_faults(fresh_gcp_server)
    result = gcp_etl.execute_in_process(
        run_config=it.logger_config(fresh_gcp_server, tmp_path / "spill", log_level="INFO"),
        instance=instance,
    )
    assert result.success
    it.flush_here()
    entries = it.check_exactly_once(
        fresh_gcp_server, instance, result.run_id, min_level=logging.INFO
    )
    assert {e["severity"] for e in entries} == {"INFO", "WARNING", "ERROR"}
    assert fresh_gcp_server.pending_faults() == 0
    statuses = [r["status"] for r in fresh_gcp_server.requests()]
    assert 429 in statuses and 500 in statuses and 503 in statuses
    assert not (tmp_path / "spill").exists()


def test_multiprocess_every_record_once_with_faults(
    fresh_gcp_server: FakeCloudLogging, instance: DagsterInstance, it: Any, tmp_path: Path
) -> None:
    it.inject_faults(fresh_gcp_server)
    result = execute_job(
        reconstructable(gcp_etl), instance=instance,
        run_config=it.logger_config(fresh_gcp_server, tmp_path / "spill"),
    )
    assert result.success
    it.flush_here()  # the run's own records; step processes flushed before they ended
    entries = it.check_exactly_once(
        fresh_gcp_server, instance, result.run_id, not_logged=NOT_LOGGED_BY_STEP_PROCESSES
    )
    pids = {e["jsonPayload"]["pid"] for e in entries}
    assert len(pids) >= 5  # the run process and one per step
    assert fresh_gcp_server.pending_faults() == 0
    assert any(0 < len(r["written"]) < r["entries"] for r in fresh_gcp_server.requests())
    assert not (tmp_path / "spill").exists()


def test_multiprocess_config_from_environment(
    fresh_gcp_server: FakeCloudLogging, instance: DagsterInstance, it: Any, tmp_path: Path,
    monkeypatch: Any,
) -> None:
    """String values accept {env: VAR}; step processes resolve them again from their env."""
    monkeypatch.setenv("IT_GCP_PROJECT", it.PROJECT)
    monkeypatch.setenv("IT_GCP_ENDPOINT", fresh_gcp_server.url)
    monkeypatch.setenv("IT_GCP_SUITE", "integration")
    config = it.logger_config(
        fresh_gcp_server, tmp_path / "spill",
        project={"env": "IT_GCP_PROJECT"}, api_endpoint={"env": "IT_GCP_ENDPOINT"},
        labels={"suite": {"env": "IT_GCP_SUITE"}}, log_level="WARNING",
    )
    result = execute_job(reconstructable(gcp_etl), instance=instance, run_config=config)
    assert result.success
    it.flush_here()
    entries = it.check_exactly_once(
        fresh_gcp_server, instance, result.run_id, min_level=logging.WARNING,
        not_logged=NOT_LOGGED_BY_STEP_PROCESSES,
    )
    assert {e["jsonPayload"]["message"] for e in entries} >= {
        "transform saw 10 rows", "audit found nothing wrong, loudly"
    }


def test_dagster_yaml_handler_config(
    fresh_gcp_server: FakeCloudLogging, it: Any, tmp_path: Path
) -> None:
    """GcpHandler from dagster.yaml ``python_logs.dagster_handler_config`` (dictConfig)."""
    handler_config = {
        "class": "dagster_logship.handlers.gcp.GcpHandler",
        "level": "INFO",
        "project": it.PROJECT,
        "log_name": "from-dagster-yaml",
        "api_endpoint": fresh_gcp_server.url,
        "labels": {"source": "dagster.yaml"},
        "flush_interval": 0.05,
    }
    overrides = {"python_logs": {"dagster_handler_config": {"handlers": {"gcp": handler_config}}}}
    with instance_for_test(overrides=overrides) as instance:
        result = gcp_etl.execute_in_process(instance=instance)  # no run config loggers
        assert result.success
        it.flush_here()
        entries = [
            e for e in fresh_gcp_server.entries() if e["jsonPayload"]["run_id"] == result.run_id
        ]
    messages = {e["jsonPayload"]["message"] for e in entries}
    assert {"extract batch 0", "transform saw 10 rows", "load chunk 4"} <= messages
    assert all(e["logName"].endswith("/logs/from-dagster-yaml") for e in entries)
    assert all(e["labels"]["source"] == "dagster.yaml" for e in entries)
    assert "extract details" not in messages  # DEBUG: below the handler's level
    ids = [e["insertId"] for e in entries]
    assert len(ids) == len(set(ids))
