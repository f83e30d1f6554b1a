"""``shipper: process``: records handed to a helper process arrive at a moto server process,
exactly and in order; the helper survives the logging process's SIGKILL and delivers what it was
handed; a helper that dies or cannot start leaves this process shipping from a thread."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest
from support import wait_until

from dagster_logship import CloudWatchHandler, ConfigError, ShippingHandler, ShippingOptions
from dagster_logship.testing import read_events

REGION = "us-east-1"


def _names() -> tuple[str, str]:
    tag = uuid.uuid4().hex[:10]
    return f"/test/proc/{tag}", f"stream-{tag}"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture
def make(moto_endpoint: str) -> Any:
    made: list[logging.Handler] = []

    def build(**kwargs: Any) -> tuple[CloudWatchHandler, logging.Logger]:
        group, stream = _names()
        options = {"shipper": "process", "flush_interval": 0.2, **kwargs}
        handler = CloudWatchHandler(
            log_group_name=group, log_stream_name=stream, aws_region=REGION,
            endpoint_url=moto_endpoint, **options,
        )
        made.append(handler)
        logger = logging.getLogger(f"proc.{uuid.uuid4().hex}")
        logger.propagate = False
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
        return handler, logger

    yield build
    for handler in made:
        handler.close()


def _messages(handler: CloudWatchHandler, logs_client: Any) -> list[str]:
    events = read_events(handler.log_group_name, handler.log_stream_name,
                         client=logs_client(REGION), flush=False)
    return [event["message"] for event in events]


def test_records_arrive_exactly_in_order_and_the_helper_leaves_on_close(
    make: Any, logs_client: Any
) -> None:
    handler, logger = make()
    for i in range(3000):
        logger.info("record %d", i, extra={"i": i, "when": {1, 2}})
    assert handler.flush(30)
    worker = handler._worker
    assert worker is not None
    pid = worker.shipper_pid  # type: ignore[attr-defined]
    assert pid is not None and pid != os.getpid()

    assert _messages(handler, logs_client) == [f"record {i}" for i in range(3000)]
    events = read_events(handler.log_group_name, handler.log_stream_name,
                         client=logs_client(REGION), flush=False)
    assert events[7]["i"] == 7 and events[7]["pid"] == os.getpid()
    assert sorted(events[7]["when"]) == [1, 2]  # a set, as the JSON encoder writes it
    stats = handler.stats
    assert (stats["enqueued"], stats["delivered"], stats["lost"], stats["spilled"]) == (
        3000, 3000, 0, 0)

    handler.close()
    assert wait_until(lambda: not _alive(pid), timeout=30)


def test_credentials_go_through_the_pipe_not_the_command_line_or_environment(
    make: Any, logs_client: Any
) -> None:
    secret = "s3cr3t-" + uuid.uuid4().hex
    handler, logger = make(aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key=secret)
    logger.info("with explicit keys")
    assert handler.flush(30)
    pid = handler._worker.shipper_pid  # type: ignore[union-attr]
    assert pid is not None
    for name in ("cmdline", "environ"):
        assert secret.encode() not in Path(f"/proc/{pid}/{name}").read_bytes()
    worker: Any = handler._worker
    for shown in (repr(handler), repr(worker._spec), repr(handler._sink_spec), str(handler.stats)):
        assert secret not in shown


def test_records_handed_over_survive_sigkill_of_the_logging_process(
    moto_endpoint: str, logs_client: Any
) -> None:
    group, stream = _names()
    script = textwrap.dedent(f"""
        import logging, os, signal, time
        from dagster_logship import CloudWatchHandler
        handler = CloudWatchHandler(
            log_group_name={group!r}, log_stream_name={stream!r}, aws_region={REGION!r},
            endpoint_url={moto_endpoint!r}, shipper="process", flush_interval=60)
        logger = logging.getLogger("victim")
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        for i in range(500):
            logger.info("record %d", i)
        worker = handler._worker
        deadline = time.monotonic() + 60
        while worker._forwarded < 500 and time.monotonic() < deadline:  # handed over
            time.sleep(0.01)
        print(worker.shipper_pid, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    helper = int(proc.stdout.strip())

    client = logs_client(REGION)

    def arrived() -> list[str]:
        try:
            return [e["message"] for e in read_events(group, stream, client=client,
                                                      flush=False)]
        except Exception:  # the stream is made by the helper's first request
            return []

    # Nothing was sent before the kill (60 s batching window): the helper delivers it all now.
    assert wait_until(lambda: len(arrived()) >= 500, timeout=60)
    assert arrived() == [f"record {i}" for i in range(500)]
    assert wait_until(lambda: not _alive(helper), timeout=30)


def test_a_helper_that_dies_leaves_this_process_shipping_from_a_thread(
    make: Any, logs_client: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    handler, logger = make()
    for i in range(5):
        logger.info("before %d", i)
    assert handler.flush(30)
    worker: Any = handler._worker
    helper = worker.shipper_pid
    os.kill(helper, signal.SIGKILL)
    assert wait_until(lambda: worker.shipper_pid is None, timeout=30)
    for i in range(5):
        logger.info("after %d", i)
    assert handler.flush(30)

    assert _messages(handler, logs_client) == (
        [f"before {i}" for i in range(5)] + [f"after {i}" for i in range(5)])
    assert handler.stats["lost"] == 0  # it had confirmed everything it was handed
    err = capfd.readouterr().err
    assert "shipper process for cloudwatch-logs" in err and "from a thread" in err


def test_a_helper_that_cannot_start_leaves_this_process_shipping_from_a_thread(
    make: Any, logs_client: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-python-here"))
    handler, logger = make()
    for i in range(20):
        logger.info("record %d", i)
    assert handler.flush(30)
    assert _messages(handler, logs_client) == [f"record {i}" for i in range(20)]
    assert "could not be started" in capfd.readouterr().err


def test_shipper_is_validated_and_needs_a_rebuildable_destination() -> None:
    with pytest.raises(ConfigError, match=r"shipper: got 'fork'\. Fix: use one of thread, process"):
        CloudWatchHandler(log_group_name="/g", shipper="fork")
    with pytest.raises(ConfigError, match="shipper: 'process' needs a destination"):
        ShippingHandler(lambda: None, "key", ShippingOptions(shipper="process"))  # type: ignore[arg-type,return-value]


def test_a_frame_the_helper_never_read_is_shipped_here_while_overflow_drops_newer_records(
    make: Any, logs_client: Any
) -> None:
    """A frame whose write failed is shipped by this process first, with its own sequence
    numbers: a flush returns True only once everything before it is delivered, even though
    overflow dropped newer records while the write hung (they used to shift the numbers)."""
    import threading

    handler, logger = make(queue_max_records=8, overflow="drop_oldest")  # 2 held here
    logger.info("before")
    assert handler.flush(30)
    worker: Any = handler._worker
    writing, go = threading.Event(), threading.Event()
    real_write = worker._write

    def hanging_write(data: bytes) -> bool:
        if not writing.is_set():
            writing.set()
            go.wait(30)
            worker._down("test: the helper stopped reading")
            return False
        return bool(real_write(data))

    worker._write = hanging_write
    logger.info("a0")
    logger.info("a1")
    handler.flush(0)  # hand them over now: the write hangs
    assert writing.wait(30)
    seen: list[tuple[bool, int]] = []
    flusher = threading.Thread(  # waits for a0 and a1, and must not return before they go
        target=lambda: seen.append((handler.flush(30), handler.stats["delivered"]))
    )
    flusher.start()
    for i in range(5):  # the local queue holds 2: b0, b1, b2 are dropped
        logger.info("b%d", i)
    go.set()
    flusher.join(60)
    assert seen and seen[0][0] and seen[0][1] >= 3  # before, a0, a1 delivered when it returned
    assert handler.flush(30)
    assert _messages(handler, logs_client) == ["before", "a0", "a1", "b3", "b4"]
    assert handler.stats["dropped"] == 3
