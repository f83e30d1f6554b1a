"""Every way a process that logs can end, with real Dagster runs and real processes, shipping to
CloudWatch Logs on a moto server process.

What is promised and checked here: a step process that ends normally (spawn or forkserver
start method), or whose host closes our handlers (``handler.close()``, ``logging.shutdown()``,
``logging.config.dictConfig``) while they are in use, delivers everything; a run terminated
mid-step (SIGTERM to the run process, which Dagster turns into an interrupt of each step)
delivers everything the ops logged; a plain process killed by SIGTERM with the default
disposition delivers what it had queued, then dies of SIGTERM; a fork while a batch is in
flight ships each record once. What is not promised, and checked as such: ``os._exit()`` runs
no hook, so records still queued in that process are lost (an op that calls ``flush_all()``
first loses nothing).
"""

from __future__ import annotations

import collections
import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from dagster import execute_job
from dagster._core.definitions.reconstruct import ReconstructableJob
from dagster._core.test_utils import instance_for_test
from faults_proxy import Action
from faults_support import HERE, duplicates, moto_events, wait_until

JOBS = str(HERE / "faults_jobs.py")
NOT_ROUTED = {"STEP_WORKER_STARTED"}


def cw_config(endpoint: str, group: str, **extra: Any) -> dict[str, Any]:
    return {"cloudwatch": {"config": {
        "log_group_name": group, "aws_region": "us-east-1", "endpoint_url": endpoint,
        "log_level": "DEBUG", "flush_interval": 0.1, "flush_timeout": 20, **extra,
    }}}


def expected(instance: Any, run_id: str) -> collections.Counter[tuple[Any, ...]]:
    out: collections.Counter[tuple[Any, ...]] = collections.Counter()
    for entry in instance.all_logs(run_id):
        kind = entry.dagster_event.event_type.name if entry.dagster_event else None
        if kind not in NOT_ROUTED:
            out[(entry.step_key, kind, entry.user_message)] += 1
    return out


def arrived(endpoint: str, group: str, run_id: str) -> collections.Counter[tuple[Any, ...]]:
    events = [e for e in moto_events(endpoint, group) if e.get("run_id") == run_id]
    ids = [e["log_message_id"] for e in events]
    assert not duplicates(ids), "a record arrived twice"
    return collections.Counter((e["step_key"], e["event_type"], e["message"]) for e in events)


@pytest.mark.parametrize("start_method", ["spawn", "forkserver"])
def test_step_processes_that_close_or_reconfigure_logging_lose_nothing(
    moto_endpoint: str, tmp_path: Path, start_method: str, no_secrets: Any
) -> None:
    group = f"/faults/lifecycle/{uuid.uuid4().hex[:8]}"
    spill = tmp_path / "spill.jsonl"
    run_config = {
        "loggers": cw_config(moto_endpoint, group, spill_path=str(spill)),
        "execution": {"config": {"multiprocess": {
            "max_concurrent": 4, "start_method": {start_method: {}},
        }}},
    }
    with instance_for_test() as instance:
        result = execute_job(ReconstructableJob.for_file(JOBS, "lifecycle"), instance=instance,
                             run_config=run_config)
        assert result.success
        from dagster_logship.shipping import flush_all

        assert flush_all(30)  # the run's own records (this process runs the run)
        want = expected(instance, result.run_id)
    got = arrived(moto_endpoint, group, result.run_id)
    assert got == want
    messages = {key[2] for key in got}
    assert {"shutdown_logging after 9", "dict_config after 9", "close_handlers last"} <= messages
    assert not spill.exists()


def test_os_exit_loses_only_what_was_still_queued(moto_endpoint: str, no_secrets: Any) -> None:
    group = f"/faults/os-exit/{uuid.uuid4().hex[:8]}"
    # A long batching window: at os._exit the last records are certainly still queued.
    run_config = {"loggers": cw_config(moto_endpoint, group, flush_interval=60)}
    with instance_for_test() as instance:
        result = execute_job(ReconstructableJob.for_file(JOBS, "exits"), instance=instance,
                             run_config=run_config)
        assert not result.success  # the step process vanished: Dagster reports it
        from dagster_logship.shipping import flush_all

        assert flush_all(30)
    messages = [e["message"] for e in moto_events(moto_endpoint, group)]
    assert [m for m in messages if m.startswith("delivered before")] == [
        f"delivered before os._exit {i}" for i in range(10)
    ]
    # The documented limit: os._exit runs no hook; what was queued dies with the process.
    assert not [m for m in messages if m.startswith("queued at os._exit")]
    failure = [m for m in messages if "unexpectedly" in m or "crash" in m.lower()]
    assert failure  # the run process reports the crash, and that is shipped


TERMINATED_RUN = """
import json, os, sys
from dagster import execute_job
from dagster._core.definitions.reconstruct import ReconstructableJob
from dagster._core.test_utils import instance_for_test

if __name__ == "__main__":
    run_config = json.loads(sys.argv[1])
    with instance_for_test() as instance:
        result = execute_job(ReconstructableJob.for_file(sys.argv[2], "terminated"),
                             instance=instance, run_config=run_config)
        out = []
        for entry in instance.all_logs(result.run_id):
            kind = entry.dagster_event.event_type.name if entry.dagster_event else None
            out.append([entry.step_key, kind, entry.user_message])
        print(json.dumps({"run_id": result.run_id, "success": result.success, "logs": out}))
"""


def test_run_terminated_mid_step_delivers_what_the_ops_logged(
    moto_endpoint: str, tmp_path: Path, no_secrets: Any, figures: Any
) -> None:
    """SIGTERM to the run process, as a run launcher or Kubernetes sends it: Dagster maps it to
    an interrupt, forwards it to the step process, the op raises, and both processes end
    through their exit hooks."""
    group = f"/faults/terminated/{uuid.uuid4().hex[:8]}"
    ready = tmp_path / "ready"
    run_config = {"loggers": cw_config(moto_endpoint, group),
                  "execution": {"config": {"multiprocess": {}}}}
    script = tmp_path / "run.py"
    script.write_text(TERMINATED_RUN)
    proc = subprocess.Popen(
        [sys.executable, str(script), json.dumps(run_config), JOBS],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "LOGSHIP_FAULTS_READY": str(ready)},
    )
    try:
        assert wait_until(ready.exists, timeout=90), "the op never started"
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=90)
        ended = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert proc.returncode == 0, err[-3000:]
    report = json.loads(out.strip().splitlines()[-1])
    assert not report["success"]
    want = collections.Counter(
        tuple(row) for row in report["logs"] if row[1] not in NOT_ROUTED
    )
    got = arrived(moto_endpoint, group, report["run_id"])
    assert got == want
    assert sum(1 for key in got if key[2].startswith("waits record")) == 25
    assert any(key[1] == "STEP_FAILURE" for key in got)  # the interrupted step, reported
    no_secrets(out, err)
    figures(sigterm_to_run_exit_seconds=round(ended, 2), records=sum(got.values()))


SIGTERM_SCRIPT = """
import logging, os, signal, sys, threading
from dagster_logship import CloudWatchHandler

mode, endpoint, group, ready = sys.argv[1:5]
if mode == "host-handler":
    # A host that handles SIGTERM itself (by exiting): ours must not replace it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(3))
handler = CloudWatchHandler(
    log_group_name=group, log_stream_name="s", aws_region="us-east-1", endpoint_url=endpoint,
    flush_interval=60, flush_timeout=20)
logger = logging.Logger("sigterm", logging.INFO)
logger.addHandler(handler)
for i in range(100):
    logger.info("queued %d", i, extra={"rid": f"q-{i}"})
handler.worker.flush(0)  # start the worker thread (and its exit hooks), send nothing yet
open(ready, "w").write(str(signal.getsignal(signal.SIGTERM)))
threading.Event().wait(60)
"""


@pytest.mark.parametrize("mode", ["default", "host-handler"])
def test_sigterm_delivers_what_was_queued(
    moto_endpoint: str, tmp_path: Path, mode: str, no_secrets: Any, figures: Any
) -> None:
    group = f"/faults/sigterm/{uuid.uuid4().hex[:8]}"
    ready = tmp_path / "ready"
    script = tmp_path / "sigterm.py"
    script.write_text(SIGTERM_SCRIPT)
    proc = subprocess.Popen(
        [sys.executable, str(script), mode, moto_endpoint, group, str(ready)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert wait_until(lambda: ready.exists() and ready.read_text() != "", timeout=60)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        ended = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    if mode == "default":
        assert "_on_sigterm" in ready.read_text()  # ours, chained over SIG_DFL
        assert proc.returncode == -signal.SIGTERM, err[-2000:]  # still dies of SIGTERM
    else:
        assert "lambda" in ready.read_text()  # the host's handler stayed in place
        assert proc.returncode == 3, err[-2000:]  # and ran; atexit delivered
    stored = sorted(e["rid"] for e in moto_events(moto_endpoint, group, "s"))
    assert stored == sorted(f"q-{i}" for i in range(100))
    assert ended < 20  # within flush_timeout
    no_secrets(out, err)
    figures(mode=mode, sigterm_to_exit_seconds=round(ended, 2), delivered=len(stored))


FORK_SCRIPT = """
import logging, os, sys
from dagster_logship import CloudWatchHandler

endpoint, group = sys.argv[1:3]
handler = CloudWatchHandler(
    log_group_name=group, log_stream_name="s", aws_region="us-east-1", endpoint_url=endpoint,
    flush_interval=0.01, max_batch_size=10)
logger = logging.Logger("fork", logging.INFO)
logger.addHandler(handler)
for i in range(50):
    logger.info("parent before %d", i, extra={"rid": f"pb-{i}"})
codes = []
for n in range(3):
    pid = os.fork()  # while the parent's worker has batches queued and in flight
    if pid == 0:
        for i in range(20):
            logger.info("child %d %d", n, i, extra={"rid": f"c{n}-{i}"})
        sys.exit(0)  # atexit (inherited from the parent) delivers the child's records
    codes.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
for i in range(50):
    logger.info("parent after %d", i, extra={"rid": f"pa-{i}"})
assert handler.flush(30)
sys.exit(max(codes))
"""


def test_fork_while_a_batch_is_in_flight_ships_each_record_once(
    moto_endpoint: str, proxies: Any, tmp_path: Path, no_secrets: Any
) -> None:
    proxy = proxies(moto_endpoint)
    proxy.decide(lambda op, n: Action("delay", seconds=0.05))  # every answer a little slow
    group = f"/faults/fork/{uuid.uuid4().hex[:8]}"
    script = tmp_path / "fork.py"
    script.write_text(FORK_SCRIPT)
    done = subprocess.run([sys.executable, str(script), proxy.url, group], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    want = ([f"pb-{i}" for i in range(50)] + [f"pa-{i}" for i in range(50)]
            + [f"c{n}-{i}" for n in range(3) for i in range(20)])
    accepted = proxy.accepted_ids()
    assert sorted(accepted) == sorted(want)  # each once: no parent record sent by a child
    no_secrets(done.stdout, done.stderr)
    logging.getLogger(__name__).debug("fork run ok")
