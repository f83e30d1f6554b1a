"""Throttling storms met by real Dagster runs and by a process at exit with the production
defaults: every record arrives; a duplicate only where an answer was lost, and identifiable by
its log_message_id; a process that exits in the middle of a storm rides it out within its
flush timeout."""

from __future__ import annotations

import collections
import time
import uuid
from pathlib import Path
from typing import Any

from dagster import execute_job
from dagster._core.definitions.reconstruct import ReconstructableJob
from dagster._core.test_utils import instance_for_test
from faults_proxy import Action
from faults_support import FAST, HERE, SECRETS, duplicates, moto_events, run_script

from dagster_logship.shipping import flush_all

JOBS = str(HERE / "faults_jobs.py")
NOT_ROUTED = {"STEP_WORKER_STARTED"}


def test_multiprocess_run_through_a_storm(
    moto_endpoint: str, proxies: Any, tmp_path: Path, no_secrets: Any, figures: Any
) -> None:
    proxy = proxies(moto_endpoint)
    proxy.script("CreateLogStream", [Action("throttle"), Action("error")])
    proxy.storm("PutLogEvents", 30, 0.55, Action("throttle"), seed=1)
    proxy.script("PutLogEvents", [Action("drop"), Action("reset"), Action("error")])
    group = f"/faults/run-storm/{uuid.uuid4().hex[:8]}"
    spill = tmp_path / "spill.jsonl"
    run_config = {
        "loggers": {"cloudwatch": {"config": {
            **FAST, "log_level": "DEBUG", "log_group_name": group, "aws_region": "us-east-1",
            "endpoint_url": proxy.url, "spill_path": str(spill), "max_batch_size": 25,
            "aws_access_key_id": SECRETS["access_key"],
            "aws_secret_access_key": SECRETS["secret_key"],
        }}},
        "execution": {"config": {"multiprocess": {"max_concurrent": 3}}},
    }
    with instance_for_test() as instance:
        result = execute_job(ReconstructableJob.for_file(JOBS, "fanout"), instance=instance,
                             run_config=run_config)
        assert result.success
        assert flush_all(60)
        want = collections.Counter(
            (e.step_key, e.dagster_event.event_type.name if e.dagster_event else None,
             e.user_message)
            for e in instance.all_logs(result.run_id)
            if not (e.dagster_event and e.dagster_event.event_type.name in NOT_ROUTED)
        )
    stored = [e for e in moto_events(moto_endpoint, group) if e["run_id"] == result.run_id]
    ids = [e["log_message_id"] for e in stored]
    lost = proxy.lost_answer_ids()
    assert set(duplicates(ids)) <= lost  # identifiable by log_message_id, and only there
    unique = {e["log_message_id"]: e for e in stored}.values()
    got = collections.Counter((e["step_key"], e["event_type"], e["message"]) for e in unique)
    assert got == want  # 100%
    assert not spill.exists()
    kinds = collections.Counter(e.action for e in proxy.log("PutLogEvents"))
    assert kinds["throttle"] >= 10
    figures(records=sum(want.values()), requests=sum(kinds.values()), faults=dict(kinds),
            duplicates=len(ids) - len(set(ids)), delivered_pct=100.0)


EXIT_SCRIPT = """
import logging, sys, time
from dagster_logship import CloudWatchHandler

# Production defaults: retry backoff 0.2-20 s with full jitter, retry_deadline 120 s,
# flush_timeout 30 s. Only the endpoint is a test's.
handler = CloudWatchHandler(log_group_name=sys.argv[2], log_stream_name="s",
                            aws_region="us-east-1", endpoint_url=sys.argv[1])
logger = logging.Logger("exit-storm", logging.INFO)
logger.addHandler(handler)
for i in range(500):
    logger.info("record %d", i, extra={"rid": f"e-{i}"})
print(time.time(), flush=True)
# and the process ends: its exit hook meets the storm
"""


def test_exit_rides_out_a_storm_with_the_production_defaults(
    moto_endpoint: str, proxies: Any, tmp_path: Path, no_secrets: Any, figures: Any
) -> None:
    storm_seconds = 5.0
    proxy = proxies(moto_endpoint)
    began: list[float] = []

    def storm(op: str, n: int) -> Action | None:
        if op != "PutLogEvents":
            return None
        if not began:
            began.append(time.monotonic())
        return Action("throttle") if time.monotonic() - began[0] < storm_seconds else None

    proxy.decide(storm)
    group = f"/faults/exit-storm/{uuid.uuid4().hex[:8]}"
    proc = run_script(EXIT_SCRIPT, args=[proxy.url, group], timeout=120)
    ended = time.time()
    assert proc.returncode == 0, proc.stderr[-3000:]
    exit_seconds = ended - float(proc.stdout.strip().splitlines()[-1])
    stored = sorted(e["rid"] for e in moto_events(moto_endpoint, group, "s"))
    assert stored == sorted(f"e-{i}" for i in range(500))  # all, once
    assert "spilled" not in proc.stderr
    throttled = sum(e.action == "throttle" for e in proxy.log("PutLogEvents"))
    assert throttled >= 3
    assert storm_seconds <= exit_seconds < 30  # rode it out, within flush_timeout
    no_secrets(proc.stdout, proc.stderr)
    figures(storm_seconds=storm_seconds, exit_seconds=round(exit_seconds, 2),
            throttled=throttled, delivered=len(stored))
