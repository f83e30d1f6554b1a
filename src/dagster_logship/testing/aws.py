"""moto helpers for testing jobs that log to CloudWatch, offline.

Two ways to stand in for CloudWatch Logs:

* :func:`moto_server` starts moto as a real server process on loopback and yields its URL. Use it
  when Dagster runs steps in other processes (multiprocess executor, ``dagster dev``): pass the URL
  as the logger's ``endpoint_url``.
* :func:`mock_cloudwatch` patches botocore inside this process (``moto.mock_aws``) and sets dummy
  credentials; enough for ``execute_in_process`` and plain ``logging``.

:func:`read_events` reads back what arrived, in order, with the JSON messages parsed.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

__all__ = [
    "TEST_CREDENTIALS",
    "flush_cloudwatch",
    "mock_cloudwatch",
    "moto_server",
    "read_events",
    "read_raw_events",
    "reset_moto_server",
]

#: Dummy credentials moto accepts; never real ones.
TEST_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=0.5) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def moto_server(
    host: str = "127.0.0.1", port: int | None = None, *, start_timeout: float = 30.0
) -> Iterator[str]:
    """Run ``python -m moto.server`` in a child process; yield its endpoint URL.

    A separate process (rather than moto's in-process threads) is what a real endpoint is: other
    processes can reach it, and its own logging never mixes with the code under test. It is
    stopped (and killed if it lingers) on exit; its output goes to a temporary file that is shown
    if it fails to start.
    """
    attempts = 1 if port is not None else 3
    last_error = ""
    for _ in range(attempts):
        chosen = port if port is not None else _free_port(host)
        url = f"http://{host}:{chosen}"
        with tempfile.TemporaryFile() as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", host, "-p", str(chosen)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
            try:
                deadline = time.monotonic() + start_timeout
                started = False
                while proc.poll() is None and time.monotonic() < deadline:
                    if _answers(f"{url}/moto-api/"):
                        started = True
                        break
                    time.sleep(0.05)  # polling a child process that is starting
                if started:
                    yield url
                    return
                log.seek(0)
                last_error = log.read().decode("utf-8", "replace")[-2000:]
            finally:
                _stop(proc)
    raise RuntimeError(f"moto server did not start on {host}: {last_error}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def reset_moto_server(endpoint_url: str) -> None:
    """Forget every resource of a running moto server (between tests)."""
    request = urllib.request.Request(f"{endpoint_url}/moto-api/reset", method="POST", data=b"")
    with urllib.request.urlopen(request, timeout=5):
        pass


@contextlib.contextmanager
def mock_cloudwatch(region: str = "us-east-1") -> Iterator[Any]:
    """In-process moto (``moto.mock_aws``) with dummy credentials and ``region``; yields a client.

    Handlers built inside the block ship to the mock, from any thread of this process. The
    environment is restored on exit.
    """
    from moto import mock_aws

    saved = {k: os.environ.get(k) for k in (*TEST_CREDENTIALS, "AWS_DEFAULT_REGION")}
    os.environ.update(TEST_CREDENTIALS)
    os.environ["AWS_DEFAULT_REGION"] = region
    try:
        with mock_aws():
            yield _logs_client(None, region)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _logs_client(endpoint_url: str | None, region: str) -> Any:
    import boto3

    dummy = endpoint_url is not None and not os.environ.get("AWS_ACCESS_KEY_ID")
    return boto3.session.Session().client(
        "logs",
        region_name=region,
        endpoint_url=endpoint_url,
        aws_access_key_id="testing" if dummy else None,
        aws_secret_access_key="testing" if dummy else None,
    )


def flush_cloudwatch(timeout: float = 10.0) -> bool:
    """Wait until every record logged so far in this process was delivered or spilled.

    Dagster never flushes its loggers; a test that reads right after a run calls this first.
    Other processes (step subprocesses) flush when they end. False if ``timeout`` passed.
    """
    from ..shipping.lifecycle import registered_workers
    from ..sinks.cloudwatch import CloudWatchSink

    deadline = time.monotonic() + timeout
    ok = True
    for worker in registered_workers():
        if not isinstance(worker.sink, CloudWatchSink):
            continue
        ok = worker.flush(max(0.0, deadline - time.monotonic())) and ok
    return ok


def read_raw_events(
    log_group_name: str,
    log_stream_name: str | None = None,
    *,
    endpoint_url: str | None = None,
    region: str = "us-east-1",
    client: Any = None,
    flush: bool = True,
    flush_timeout: float = 30.0,
) -> list[dict[str, Any]]:
    """The stored events (``timestamp``, ``message``, ``logStreamName``...) in the service's order.

    One stream: ``GetLogEvents`` from the head, following ``nextForwardToken`` until it repeats.
    A whole group: ``FilterLogEvents`` over every stream, then ordered by timestamp (stable, so
    each stream keeps its order). ``flush`` first waits (up to ``flush_timeout``) for this
    process's CloudWatch handlers, and raises ``TimeoutError`` if they did not finish: reading
    while records are still on their way would return a silently partial list.
    """
    # Under load (a fresh moto server importing its backend, a first boto3 client) the last
    # batch can take seconds: a read that did not wait for it would be silently partial.
    if flush and not flush_cloudwatch(flush_timeout):
        raise TimeoutError(
            f"CloudWatch handlers of this process still held records after {flush_timeout:g}s"
        )
    logs = client if client is not None else _logs_client(endpoint_url, region)
    events: list[dict[str, Any]] = []
    if log_stream_name is not None:
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {
                "logGroupName": log_group_name,
                "logStreamName": log_stream_name,
                "startFromHead": True,
            }
            if token is not None:
                kwargs["nextToken"] = token
            page = logs.get_log_events(**kwargs)
            for event in page.get("events", []):
                events.append(dict(event, logStreamName=log_stream_name))
            next_token = page.get("nextForwardToken")
            if next_token is None or next_token == token:
                break
            token = next_token
        return events
    paginator = logs.get_paginator("filter_log_events")
    for page in paginator.paginate(logGroupName=log_group_name):
        events.extend(page.get("events", []))
    events.sort(key=lambda event: event.get("timestamp", 0))
    return events


def read_events(
    log_group_name: str,
    log_stream_name: str | None = None,
    *,
    endpoint_url: str | None = None,
    region: str = "us-east-1",
    client: Any = None,
    flush: bool = True,
    flush_timeout: float = 30.0,
) -> list[dict[str, Any]]:
    """The events of a group (or one stream) in order, each the parsed JSON event we shipped.

    A message that is not JSON comes back as ``{"message": text}``. See :func:`read_raw_events`.
    """
    out: list[dict[str, Any]] = []
    for event in read_raw_events(
        log_group_name,
        log_stream_name,
        endpoint_url=endpoint_url,
        region=region,
        client=client,
        flush=flush,
        flush_timeout=flush_timeout,
    ):
        text = event.get("message", "")
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        out.append(parsed if isinstance(parsed, dict) else {"message": text})
    return out
