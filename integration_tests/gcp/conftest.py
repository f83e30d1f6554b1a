"""Fixtures for the Cloud Logging integration tests: a Dagster instance, and the check that every
record of a run arrived exactly once (the fake server, ``fresh_gcp_server``: one per test, since
tests inject faults and count requests, and the offline environment:
integration_tests/conftest.py)."""

from __future__ import annotations

import collections
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from dagster import DagsterInstance
from dagster._core.test_utils import instance_for_test

from dagster_logship.testing import FakeCloudLogging, flush_gcp

HERE = Path(__file__).parent
# The jobs module must be importable by name in Dagster's step processes too: spawned
# processes inherit sys.path from this one. Appended, not put first: Dagster drops sys.path[0]
# (taking it for the script's directory) when it imports the job's module.
if str(HERE) not in sys.path:
    sys.path.append(str(HERE))

PROJECT = "it-project"


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    with instance_for_test() as inst:
        yield inst


def logger_config(server: FakeCloudLogging, spill_path: Path, **overrides: Any) -> dict[str, Any]:
    """gcp_logger run config aimed at the fake server, with test timings."""
    config: dict[str, Any] = {
        "project": PROJECT,
        "log_name": "dagster-it",
        "api_endpoint": server.url,
        "log_level": "DEBUG",
        "labels": {"suite": "integration"},
        "flush_interval": 0.05,
        "retry_initial_backoff": 0.01,
        "retry_max_backoff": 0.1,
        "retry_deadline": 20.0,
        "flush_timeout": 20.0,
        "spill_path": str(spill_path),
    }
    config.update(overrides)
    return {"loggers": {"gcp": {"config": config}}}


def flush_here(timeout: float = 20.0) -> None:
    """Deliver what this process's workers hold (the step processes flushed when they ended)."""
    assert flush_gcp(timeout)


def inject_faults(server: FakeCloudLogging) -> None:
    """429s, 5xx and per-entry transient errors for the first requests, whoever sends them."""
    server.fail_next(2, status=429)
    server.partial_next(2, {0: "UNAVAILABLE", 2: "RESOURCE_EXHAUSTED"})
    server.fail_next(1, status=500)
    server.partial_next(1, {1: "DEADLINE_EXCEEDED", 3: "INTERNAL"})
    server.fail_next(1, status=503)


def check_exactly_once(
    server: FakeCloudLogging,
    instance: DagsterInstance,
    run_id: str,
    min_level: int = logging.DEBUG,
    not_logged: frozenset[str] = frozenset(),
) -> list[dict[str, Any]]:
    """Every event of the run at ``min_level`` or above arrived once, by insertId and content.

    ``not_logged`` names event types Dagster writes to the event log without passing them to
    the run's loggers. Returns the run's entries.
    """
    expected: collections.Counter[tuple[Any, ...]] = collections.Counter()
    for record in instance.all_logs(run_id):
        # The schema names events by DagsterEventType member (RUN_START, not PIPELINE_START).
        event_type = record.dagster_event.event_type.name if record.dagster_event else None
        if record.level >= min_level and event_type not in not_logged:
            key = (event_type, record.user_message, record.step_key,
                   logging.getLevelName(record.level))
            expected[key] += 1
    entries = [e for e in server.entries() if e["jsonPayload"]["run_id"] == run_id]
    insert_ids = [e["insertId"] for e in entries]
    assert len(insert_ids) == len(set(insert_ids)), "an entry arrived twice"
    # Accepted entries were never sent again, whatever the injected faults made us resend.
    written = collections.Counter(
        r["insert_ids"][i] for r in server.requests() for i in r["written"]
    )
    assert not [i for i, n in written.items() if n > 1]

    by_record: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for entry in entries:
        by_record[entry["jsonPayload"]["log_message_id"]].append(entry)
    got: collections.Counter[tuple[Any, ...]] = collections.Counter()
    for message_id, parts in by_record.items():
        parts.sort(key=lambda e: e["jsonPayload"].get("part", {}).get("index", 0))
        if len(parts) == 1:
            assert parts[0]["insertId"] == message_id
        else:
            assert [p["insertId"] for p in parts] == [
                f"{message_id}-{n}" for n in range(1, len(parts) + 1)
            ]
            assert {p["jsonPayload"]["part"]["count"] for p in parts} == {len(parts)}
        payload = parts[0]["jsonPayload"]
        message = "".join(p["jsonPayload"]["message"] for p in parts)
        got[(payload["event_type"], message, payload["step_key"], payload["level"])] += 1
        for part in parts:
            assert part["logName"] == f"projects/{PROJECT}/logs/dagster-it"
            assert part["labels"]["run_id"] == run_id
            assert part["labels"]["suite"] == "integration"
            assert part["severity"] == payload["level"]
    assert got == expected
    return entries


@pytest.fixture
def it() -> SimpleNamespace:
    """The helpers above (conftest modules cannot be imported under importlib mode)."""
    return SimpleNamespace(
        PROJECT=PROJECT, logger_config=logger_config, flush_here=flush_here,
        inject_faults=inject_faults, check_exactly_once=check_exactly_once,
    )
