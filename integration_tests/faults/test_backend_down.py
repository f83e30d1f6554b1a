"""The backend unreachable for a whole run: the run succeeds, no step process waits longer than
its flush timeout to exit, every record is in the spill files with a summary line per spill on
stderr, and `dagster-logship replay` delivers them later. And memory stays bounded by the queue
limits however long the outage."""

from __future__ import annotations

import collections
import json
import socket
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from dagster import execute_job
from dagster._core.definitions.reconstruct import ReconstructableJob
from dagster._core.test_utils import instance_for_test
from faults_support import HERE, SECRETS, ExitWatch, jsonl, run_script

from dagster_logship.cli import main as cli_main
from dagster_logship.shipping import read_spill
from dagster_logship.shipping.lifecycle import shutdown_all

JOBS = str(HERE / "faults_jobs.py")
FLUSH_TIMEOUT = 2.0
#: Dagster logs this in each step process before the job's loggers exist: no logger sees it.
NOT_ROUTED = {"STEP_WORKER_STARTED"}


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def dead_endpoint() -> str:
    """A loopback port nothing listens on: every connection is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def expected(instance: Any, run_id: str) -> collections.Counter[tuple[Any, ...]]:
    out: collections.Counter[tuple[Any, ...]] = collections.Counter()
    for entry in instance.all_logs(run_id):
        kind = entry.dagster_event.event_type.name if entry.dagster_event else None
        if kind not in NOT_ROUTED:
            out[(entry.step_key, kind, entry.user_message)] += 1
    return out


def keyed(events: list[dict[str, Any]], run_id: str) -> collections.Counter[tuple[Any, ...]]:
    return collections.Counter(
        (e["step_key"], e["event_type"], e["message"]) for e in events if e["run_id"] == run_id
    )


def test_run_with_every_backend_down(
    tmp_path: Path, capfd: Any, moto_endpoint: str, fresh_gcp_server: Any, no_secrets: Any,
    figures: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    pids = tmp_path / "pids"
    pids.mkdir()
    monkeypatch.setenv("LOGSHIP_FAULTS_PIDS", str(pids))
    cw_spill, gcp_spill = tmp_path / "cloudwatch.spill", tmp_path / "gcp.spill"
    group = f"/faults/down/{uuid.uuid4().hex[:8]}"
    common = {"log_level": "DEBUG", "flush_timeout": FLUSH_TIMEOUT, "flush_interval": 0.1}
    run_config = {
        "loggers": {
            "cloudwatch": {"config": {
                **common, "log_group_name": group, "aws_region": "us-east-1",
                "endpoint_url": dead_endpoint(), "spill_path": str(cw_spill),
                "aws_access_key_id": SECRETS["access_key"],
                "aws_secret_access_key": SECRETS["secret_key"],
            }},
            "gcp": {"config": {
                **common, "project": "faults", "log_name": "down",
                "api_endpoint": dead_endpoint(), "spill_path": str(gcp_spill),
            }},
        },
        "execution": {"config": {"multiprocess": {"max_concurrent": 3}}},
    }
    watch = ExitWatch(pids)
    started = time.monotonic()
    with instance_for_test() as instance:
        result = execute_job(ReconstructableJob.for_file(JOBS, "fanout"), instance=instance,
                             run_config=run_config)
        run_seconds = time.monotonic() - started
        assert result.success  # the outage never reaches the ops
        run_id = result.run_id
        # The run's own process (here: this one) exits too; its records are spilled likewise.
        shutdown_all()
        want = expected(instance, run_id)
    exit_seconds = watch.stop()
    err = capfd.readouterr().err

    # No step process waited longer than its flush timeout to exit. Per step process: from its
    # last record (Dagster's last event there; the exit hooks start right after) to the spill
    # of what was left (our exit hook ending), and from then to the process being gone.
    assert len(exit_seconds) == 3, exit_seconds
    lines = list(read_spill(cw_spill)) + list(read_spill(gcp_spill))
    hook_seconds, teardown_seconds = [], []
    for pid in exit_seconds:
        mine = [line for line in lines if line["pid"] == pid]
        last_record = max(parse_time(line["timestamp"]) for line in mine)
        spilled_at = max(line["logship_spill"]["spilled_at"] for line in mine)
        hook_seconds.append(spilled_at - last_record)
        teardown_seconds.append(watch.ended[pid] - spilled_at)
    assert max(hook_seconds) <= FLUSH_TIMEOUT + 0.5, hook_seconds
    # What follows is the interpreter tearing down a process that imported Dagster: no Python
    # frame runs any more (seen with py-spy), ~0.5-4 s on this 2-core box under load.
    assert max(teardown_seconds) <= 8.0, teardown_seconds

    # Every record of the run is in each destination's spill, once, with why and where.
    for spill, kind in ((cw_spill, "cloudwatch-logs"), (gcp_spill, "Cloud Logging")):
        lines = list(read_spill(spill))
        assert keyed(lines, run_id) == want, spill.name
        assert all(line["logship_spill"]["destination"].startswith(kind) for line in lines)
        assert all("flush_timeout" in line["logship_spill"]["reason"] for line in lines)
        summaries = [s for s in err.splitlines() if "spilled" in s and str(spill) in s]
        assert len(summaries) >= 4, spill.name  # three step processes and the run's own
        assert sum(int(s.split("spilled ")[1].split()[0]) for s in summaries) == len(lines)

    # Later, the backends are back: replay delivers every record.
    replays = [
        [str(cw_spill), "--kind", "cloudwatch", "--log-group", group, "--region", "us-east-1",
         "--endpoint-url", moto_endpoint],
        [str(gcp_spill), "--kind", "gcp", "--project", "faults", "--log-name", "down",
         "--api-endpoint", fresh_gcp_server.url],
    ]
    for args in replays:
        assert cli_main(["replay", *args]) == 0, capfd.readouterr()
    from faults_support import moto_events

    assert keyed(moto_events(moto_endpoint, group), run_id) == want
    assert keyed([e["jsonPayload"] for e in fresh_gcp_server.entries()], run_id) == want
    ids = [e["insertId"] for e in fresh_gcp_server.entries()]
    assert len(ids) == len(set(ids))
    no_secrets(err)
    figures(records=sum(want.values()), run_seconds=round(run_seconds, 1),
            op_end_to_exit_seconds=sorted(round(s, 2) for s in exit_seconds.values()),
            exit_hook_seconds=sorted(round(s, 2) for s in hook_seconds),
            after_hook_teardown_seconds=sorted(round(s, 2) for s in teardown_seconds),
            flush_timeout=FLUSH_TIMEOUT, spilled_cloudwatch=len(list(read_spill(cw_spill))),
            spilled_gcp=len(list(read_spill(gcp_spill))), replayed_pct=100.0)


RSS_SCRIPT = """
import json, logging, socket, sys, time

def rss_kib(key="VmRSS"):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0

at_start = rss_kib("VmHWM")
from dagster_logship import CloudWatchHandler

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
count, queue_bytes, spill = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
handler = CloudWatchHandler(
    log_group_name="/rss", log_stream_name="s", aws_region="us-east-1",
    endpoint_url=f"http://127.0.0.1:{port}", queue_max_bytes=queue_bytes,
    overflow="drop_newest", retry_deadline=600, flush_timeout=1, spill_path=spill)
logger = logging.Logger("rss", logging.INFO)
logger.addHandler(handler)
# The first attempt builds the client (botocore's models): wait for it (bounded), so that every
# run compared holds one, then measure from there.
logger.info("first", extra={"rid": -1})
deadline = time.monotonic() + 30
while handler.stats["retried"] < 1 and time.monotonic() < deadline:
    time.sleep(0.01)
before = rss_kib()
peak = before
marks = {}
for i in range(count):
    logger.info("record %d with a message of a usual length, about sixty chars", i,
                extra={"rid": i})
    if (i + 1) % 10_000 == 0:
        peak = max(peak, rss_kib())
        if i + 1 in (30_000, 300_000):
            marks[i + 1] = peak
peak = max(peak, rss_kib())
print(json.dumps({"before": before, "peak": peak, "marks": marks, "stats": handler.stats,
                  "import_hwm": at_start}))
"""


def test_memory_is_bounded_by_the_queue_during_an_outage(
    tmp_path: Path, figures: Any, no_secrets: Any
) -> None:
    queue_bytes = 4 * 1024 * 1024
    runs = {}
    for count in (0, 300_000):
        proc = run_script(RSS_SCRIPT, args=[str(count), str(queue_bytes),
                                            str(tmp_path / f"spill-{count}")], timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        no_secrets(proc.stdout, proc.stderr)
        runs[count] = json.loads(proc.stdout.strip().splitlines()[-1])
    base, big = runs[0], runs[300_000]
    growth_kib = big["peak"] - base["peak"]
    # Bounded by the queue (plus the one batch in flight and allocator slack) ...
    assert growth_kib * 1024 <= queue_bytes + 16 * 1024 * 1024, (base, big)
    # ... and flat: logging ten times more during the outage costs no more memory.
    assert big["marks"]["300000"] - big["marks"]["30000"] <= 2 * 1024, big
    stats = big["stats"]
    assert stats["dropped"] > 250_000  # the queue was full: the overflow policy applied
    assert stats["enqueued"] + stats["dropped"] == 300_001  # every record accounted for
    # What was queued is in the spill file at exit; the drops were reported on stderr.
    assert len(jsonl(tmp_path / "spill-300000")) == stats["enqueued"]
    assert "dropped" in proc.stderr and "queue full" in proc.stderr
    figures(records=300_000, queue_max_bytes=queue_bytes,
            baseline_peak_mib=round(base["peak"] / 1024, 1),
            outage_peak_mib=round(big["peak"] / 1024, 1),
            growth_mib=round(growth_kib / 1024, 1),
            peak_at_30k_mib=round(big["marks"]["30000"] / 1024, 1),
            peak_at_300k_mib=round(big["marks"]["300000"] / 1024, 1),
            enqueued=stats["enqueued"], dropped=stats["dropped"])
