"""Helpers shared by the fault-injection tests (and by the scripts they run in subprocesses)."""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

__all__ = [
    "FAST",
    "HERE",
    "SECRETS",
    "ExitWatch",
    "cw_client",
    "duplicates",
    "jsonl",
    "moto_events",
    "run_script",
    "scan_for_secrets",
    "wait_until",
]

HERE = Path(__file__).resolve().parent

#: Fake credentials, distinctive enough that finding any of them in an output means a leak.
SECRETS = {
    "access_key": "AKIAFAULTSUITE6LEAKQ",
    "secret_key": "fAuLtSuItE6sEcReTkEy9f1c9e2d7b3a4c5e8f9a0b1c2d3e4f5a",
    "token": "FwoFaultSuiteSessionToken6Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2Rr1Qq0",
}

#: Test timings: batches leave after 50 ms and retries back off 20-300 ms, so that storms of
#: hundreds of injected failures pass in seconds. (The production defaults are exercised where
#: a test says so.)
FAST: dict[str, Any] = {
    "flush_interval": 0.05,
    "retry_initial_backoff": 0.02,
    "retry_max_backoff": 0.3,
    "retry_deadline": 60.0,
    "flush_timeout": 30.0,
}


def scan_for_secrets(texts: Iterable[str], roots: Iterable[Path]) -> None:
    """Fail if a fake secret appears in ``texts`` or in any file under ``roots``."""
    needles = list(SECRETS.values())
    for text in texts:
        for needle in needles:
            assert needle not in (text or ""), f"a secret leaked into an output: {needle[:8]}..."
    for root in roots:
        root = Path(root)
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for path in files:
            try:
                data = path.read_bytes()
            except OSError:
                continue
            for needle in needles:
                assert needle.encode() not in data, f"a secret leaked into {path}"


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.01) -> bool:
    """Poll a condition no event announces (another process's state); bounded in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def duplicates(ids: Iterable[str]) -> dict[str, int]:
    return {k: n for k, n in collections.Counter(ids).items() if n > 1}


def cw_client(endpoint: str, region: str = "us-east-1") -> Any:
    """A boto3 logs client straight to the moto server (not through any proxy)."""
    import boto3

    return boto3.session.Session().client(
        "logs", region_name=region, endpoint_url=endpoint,
        aws_access_key_id="reader", aws_secret_access_key="reader",
    )


def moto_events(endpoint: str, group: str, stream: str | None = None,
                region: str = "us-east-1") -> list[dict[str, Any]]:
    """Parsed events stored in moto (no flush: the caller decides when to read)."""
    from dagster_logship.testing import read_events

    return read_events(group, stream, client=cw_client(endpoint, region), flush=False)


def run_script(body: str, *, env: dict[str, str] | None = None, timeout: float = 120,
               args: Iterable[str] = ()) -> subprocess.CompletedProcess[str]:
    """Run ``body`` as a script file in a fresh interpreter (importable helpers on its path)."""
    fd, path = tempfile.mkstemp(suffix=".py", prefix="logship_fault_")
    with os.fdopen(fd, "w") as fh:
        fh.write(f"import sys\nsys.path.append({str(HERE)!r})\n" + textwrap.dedent(body))
    try:
        return subprocess.run(
            [sys.executable, path, *args], capture_output=True, text=True, timeout=timeout,
            env={**os.environ, **(env or {})}, check=False,
        )
    finally:
        os.unlink(path)


class ExitWatch:
    """Notes when processes end: ops write ``<pid> <time.time()>`` files into ``directory`` as
    their last act; a thread polls ``/proc/<pid>`` and records when each disappeared."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ended: dict[int, float] = {}
        self.started: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for path in self.directory.glob("*.pid"):
                try:
                    pid_text, at = path.read_text().split()
                except ValueError:
                    continue  # being written
                pid = int(pid_text)
                self.started.setdefault(pid, float(at))
                if pid not in self.ended and not _alive(pid):
                    self.ended[pid] = time.time()
            self._stop.wait(0.01)

    def stop(self) -> dict[int, float]:
        """Seconds from each op's end to its process's end."""
        self._stop.set()
        self._thread.join(5)
        return {pid: self.ended[pid] - self.started[pid] for pid in self.ended}


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"  # a zombie has ended
    except OSError:
        return False


def jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]
