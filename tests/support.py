"""Test support: a scriptable in-memory sink for the shipping core's contract with sinks.

It stands in for a cloud service only in these unit tests of the shipping core; the sinks'
own tests talk to a moto server and to the fake Cloud Logging server.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from dagster_logship.shipping import ItemTuple, SendResult, Sink, SinkLimits
from dagster_logship.shipping.sink import event_of
from dagster_logship.testing import FakeCloudLogging


class Sent(NamedTuple):
    """An item as a ``MemorySink`` saw it, with names for the tests' convenience (a sink gets
    plain tuples read by position; see ``shipping/sink.py``)."""

    text: str
    payload: Any
    size: int
    timestamp: float
    seq: int

    @property
    def event(self) -> dict[str, Any]:
        return event_of(self.text)


class MemorySink(Sink):
    """Records every batch; ``script`` entries are raised or returned by the next sends."""

    sdk_loggers = ("botocore", "urllib3")  # as the cloud SDK it stands in for

    def __init__(self, limits: SinkLimits | None = None) -> None:
        self.limits = limits or SinkLimits(
            max_batch_events=100,
            max_batch_bytes=100_000,
            max_event_bytes=50_000,
            per_event_overhead=10,
        )
        self.destination = "memory"
        self.calls: list[list[Sent]] = []
        self.script: deque[Any] = deque()
        self.gate = threading.Event()
        self.gate.set()
        self.in_send = threading.Event()
        self.owner = os.getpid()
        self.on_send: Callable[[Sequence[Sent]], None] | None = None
        self._cond = threading.Condition()
        self.closed = 0

    def send(self, items: Sequence[ItemTuple]) -> SendResult | None:
        self.in_send.set()
        if os.getpid() == self.owner:
            self.gate.wait()
        sent = [Sent._make(item) for item in items]
        if self.on_send is not None:
            self.on_send(sent)
        with self._cond:
            self.calls.append(sent)
            step = self.script.popleft() if self.script else None
            self._cond.notify_all()
        if isinstance(step, BaseException):
            raise step
        return step

    def close(self) -> None:
        self.closed += 1

    def messages(self) -> list[str]:
        """Messages the service accepted, in arrival order (retries show up again)."""
        return [item.event["message"] for call in self.calls for item in call]

    def wait_calls(self, n: int, timeout: float = 10.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self.calls) >= n, timeout)


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll a condition (for state no event announces); never a fixed sleep."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.002)
    return predicate()


_CLOUD_ENV_UNSET = (
    "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_REGION",
    "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
    "GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT", "GOOGLE_CLOUD_QUOTA_PROJECT",
)


def offline_cloud_env(
    monkeypatch: Any,
    tmp_path: Any,
    *,
    access_key: str = "testing",
    secret_key: str = "testing",
    session_token: str | None = None,
    region: str = "us-east-1",
) -> None:
    """Never a real cloud, in this process or its children: dummy AWS keys, no user AWS or
    Google configuration files, no instance metadata, no Google credentials or project."""
    for key in _CLOUD_ENV_UNSET:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret_key)
    if session_token is None:
        monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    else:
        monkeypatch.setenv("AWS_SESSION_TOKEN", session_token)
    monkeypatch.setenv("AWS_DEFAULT_REGION", region)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "no-credentials.json"))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "no-gcloud"))


def guard_remote_connections(monkeypatch: Any) -> list[str]:
    """Refuse, and record, every name lookup or connection to a host that is not loopback.

    Returns the list of refused attempts: a test asserts it stays empty. Lookups are guarded too,
    because a client bound for real AWS resolves ``logs.<region>.amazonaws.com`` first.
    """
    import ipaddress
    import socket

    attempts: list[str] = []

    def loopback(host: Any) -> bool:
        if host in (None, "localhost", b"localhost"):
            return True
        try:
            text = host.decode() if isinstance(host, bytes) else str(host)
            return ipaddress.ip_address(text.split("%")[0]).is_loopback
        except ValueError:
            return False

    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not loopback(host):
            attempts.append(f"getaddrinfo {host}")
            raise OSError(f"test guard: lookup of non-loopback host {host!r} refused")
        return real_getaddrinfo(host, *args, **kwargs)

    def check(address: Any) -> None:
        host = address[0] if isinstance(address, tuple) else None
        if isinstance(address, tuple) and not loopback(host):
            attempts.append(f"connect {address}")
            raise OSError(f"test guard: connection to non-loopback {address!r} refused")

    def connect(self: socket.socket, address: Any) -> None:
        check(address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check(address)
        return real_connect_ex(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    return attempts


class ListingFakeCloudLogging(FakeCloudLogging):
    """:class:`FakeCloudLogging` (which answers ``entries.list`` itself) plus ``listed``: the
    filter of each list call, so a test can see what ``dagster-logship tail`` asked."""

    @property
    def listed(self) -> list[str]:
        return [str((r["body"] or {}).get("filter") or "") for r in self.list_requests()]


# -- real Dagster processes in integration tests ---------------------------------------------------


def console_script(name: str) -> str:
    """A console script of this interpreter's environment (dagster, dagster-daemon, ...)."""
    import sys
    from pathlib import Path

    import pytest

    path = Path(sys.executable).parent / name
    if not path.exists():
        pytest.skip(f"{name} is not installed next to {sys.executable}")
    return str(path)


def wait_for(condition: Callable[[], Any], timeout: float, what: str, log: Any) -> Any:
    """Poll ``condition`` until it returns something true; on timeout fail with the end of the
    process output in ``log`` (a path)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.25)
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
    raise AssertionError(f"timed out waiting for {what}; the process's output ends with:\n{tail}")


def kill_session(sid: int) -> None:
    """SIGKILL every process left in session ``sid`` (code servers, run workers)."""
    import signal
    from pathlib import Path

    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getsid(int(entry.name)) == sid:
                os.kill(int(entry.name), signal.SIGKILL)
        except (OSError, ValueError):
            continue


def stop_session(proc: Any) -> None:
    """SIGTERM a process started with ``start_new_session=True`` and its group, SIGKILL what
    is left after 20 s, then whatever else stayed in its session."""
    import contextlib
    import signal
    import subprocess

    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    kill_session(proc.pid)
