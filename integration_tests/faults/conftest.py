"""Fixtures for the fault-injection suite: fault proxies in front of the servers, distinctive fake
secrets (in the offline environment) that must never appear in any output, and the figures each
test reports (written as JSON lines to $LOGSHIP_FAULT_FIGURES when it is set). The moto server,
the fake Cloud Logging server (``fresh_gcp_server``: one per test, since tests inject faults and
count requests) and the offline environment: integration_tests/conftest.py."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
# Appended, not put first: Dagster drops sys.path[0] when it imports a job's module in a step
# process. Spawned step processes inherit sys.path.
if str(HERE) not in sys.path:
    sys.path.append(str(HERE))

from faults_proxy import FaultProxy  # noqa: E402
from faults_support import SECRETS, scan_for_secrets  # noqa: E402


@pytest.fixture
def offline_credentials() -> dict[str, str]:
    """Fake but distinctive AWS secrets for the offline environment (step processes inherit
    them): ``no_secrets`` looks for them in every output."""
    return {"access_key": SECRETS["access_key"], "secret_key": SECRETS["secret_key"],
            "session_token": SECRETS["token"]}


@pytest.fixture
def proxies() -> Iterator[Callable[..., FaultProxy]]:
    """``make(upstream, protocol="aws")``: a fault proxy, closed after the test."""
    made: list[FaultProxy] = []

    def make(upstream: str | None, protocol: str = "aws") -> FaultProxy:
        proxy = FaultProxy(upstream, protocol)
        made.append(proxy)
        return proxy

    yield make
    for proxy in made:
        proxy.close()


@pytest.fixture
def no_secrets(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> Iterator[Callable[..., None]]:
    """``check(*texts)``: no fake secret in these texts nor in what was printed since the last
    read of the capture (step processes print there too). When the test ends, what is left of
    the capture and every file under the test's tmp_path (spill files...) are checked too."""

    def check(*texts: str) -> None:
        captured = capfd.readouterr()
        scan_for_secrets([*texts, captured.out, captured.err], [])

    yield check
    captured = capfd.readouterr()
    scan_for_secrets([captured.out, captured.err], [tmp_path])


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Callable[..., None]:
    """``report(**numbers)``: figures of this test, appended to $LOGSHIP_FAULT_FIGURES."""

    def report(**numbers: Any) -> None:
        path = os.environ.get("LOGSHIP_FAULT_FIGURES")
        if path:
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"test": request.node.nodeid, **numbers}) + "\n")

    return report


@pytest.fixture
def ns() -> SimpleNamespace:
    """The support module (conftest modules cannot be imported under importlib mode)."""
    import faults_support

    return SimpleNamespace(**{k: getattr(faults_support, k) for k in faults_support.__all__})
