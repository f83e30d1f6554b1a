"""Real Dagster runs (in-process and the multiprocess executor, several steps) configured with the
README's YAML, shipping to a moto server process: every user record and every Dagster event at
the configured level arrives exactly once, in order within each step, compared with the run's own
event log in the instance."""

from __future__ import annotations

import logging
from collections import Counter
from types import ModuleType
from typing import Any

import pytest
import yaml
from dagster import DagsterInstance, execute_job, reconstructable
from dagster._core.test_utils import instance_for_test

from dagster_logship.testing import read_events

# The README's example, as users write it.
README_YAML = """
loggers:
  cloudwatch:
    config:
      log_level: ERROR
      log_group_name: /my/cool/cloudwatch/log/group
      log_stream_name: very_good_log_stream
      aws_region: us-west-2
"""
GROUP = "/my/cool/cloudwatch/log/group"
STREAM = "very_good_log_stream"
REGION = "us-west-2"

#: Dagster logs this event in the step subprocess through a log manager built before the run's
#: loggers exist (``create_context_free_log_manager``: console + event log only), so no
#: user-selected logger can receive it; it still reaches the instance's event log.
NOT_ROUTED_TO_LOGGERS_IN_SUBPROCESSES = frozenset({"STEP_WORKER_STARTED"})


def run_config(
    endpoint_url: str, level: str, multiprocess: bool
) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(README_YAML)
    logger_config = config["loggers"]["cloudwatch"]["config"]
    logger_config["log_level"] = level
    # Test-only additions: the moto server, and a short batching window.
    logger_config["endpoint_url"] = endpoint_url
    logger_config["flush_interval"] = 0.2
    if multiprocess:
        config["execution"] = {"config": {"multiprocess": {"max_concurrent": 4}}}
    return config


def check_run(
    instance: DagsterInstance,
    run_id: str,
    arrived: list[dict[str, Any]],
    level: str,
    excluded: frozenset[str] = frozenset(),
) -> None:
    threshold = logging.getLevelName(level)
    mine = [event for event in arrived if event["run_id"] == run_id]
    assert mine, "nothing arrived for this run"

    ids = [event["log_message_id"] for event in mine]
    assert None not in ids
    assert len(ids) == len(set(ids)), "an event arrived twice"
    assert all(logging.getLevelName(event["level"]) >= threshold for event in mine)

    entries = [entry for entry in instance.all_logs(run_id) if entry.level >= threshold]
    expected = [
        (
            entry.step_key,
            entry.dagster_event.event_type.name if entry.dagster_event else None,
            logging.getLevelName(entry.level),
            entry.user_message,
        )
        for entry in entries
        if not (entry.dagster_event and entry.dagster_event.event_type.name in excluded)
    ]
    got = [
        (event["step_key"], event["event_type"], event["level"], event["message"])
        for event in mine
    ]
    assert Counter(got) == Counter(expected)

    # In order within each step (the run-level events come from several processes).
    steps = {key[0] for key in expected if key[0] is not None}
    assert steps == {"extract", "transform_a", "transform_b", "load", "report"}
    for step in steps:
        assert [k for k in got if k[0] == step] == [k for k in expected if k[0] == step], step

    # Every user record at the level is there (the job logs an error in each op).
    user_errors = {k[3] for k in got if k[1] is None and k[2] == "ERROR"}
    assert {f"{step} error: something to page about" for step in steps} <= user_errors


@pytest.mark.parametrize("level", ["ERROR", "DEBUG"])
def test_in_process_run(
    moto_endpoint: str, logs_client: Any, cw_jobs: ModuleType, level: str
) -> None:
    with instance_for_test() as instance:
        result = cw_jobs.etl.execute_in_process(
            run_config=run_config(moto_endpoint, level, multiprocess=False),
            instance=instance
        )
        assert result.success
        arrived = read_events(GROUP, STREAM, client=logs_client(REGION))
        check_run(instance, result.run_id, arrived, level)


@pytest.mark.parametrize("level", ["ERROR", "DEBUG"])
def test_multiprocess_run(
    moto_endpoint: str, logs_client: Any, cw_jobs: ModuleType, level: str
) -> None:
    with instance_for_test() as instance:
        with execute_job(
            reconstructable(cw_jobs.etl),
            instance=instance,
            run_config=run_config(moto_endpoint, level, multiprocess=True),
        ) as result:
            assert result.success
            run_id = result.run_id
        # Step subprocesses flushed as they ended; read_events flushes this process.
        arrived = read_events(GROUP, STREAM, client=logs_client(REGION))
        check_run(instance, run_id, arrived, level,
                  excluded=NOT_ROUTED_TO_LOGGERS_IN_SUBPROCESSES)
        pids = {event["pid"] for event in arrived if event["run_id"] == run_id}
        if level == "DEBUG":
            assert len(pids) >= 6  # the run worker and five step processes
