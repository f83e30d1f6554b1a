"""Shared by the CLI and examples integration tests: a clean environment for child processes
(dummy AWS credentials, no Google credentials, a temporary DAGSTER_HOME), runners for the
``dagster-logship`` and ``dagster`` commands, and a fake Cloud Logging server that also answers
``entries.list`` (for ``dagster-logship tail``).

Imported by name (this directory is put on ``sys.path`` by the conftest files), since conftest
modules cannot be imported under ``--import-mode=importlib``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from dagster_logship.testing import FakeCloudLogging
from dagster_logship.testing.gcp_server import _handler_class

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
PROJECT = "cli-test-project"

_AWS_VARS = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_REGION",
             "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
             "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")
_GCP_VARS = ("GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT", "GOOGLE_CLOUD_QUOTA_PROJECT")


def dagster_home(path: Path, extra_yaml: str = "") -> Path:
    """A DAGSTER_HOME with telemetry off (and ``extra_yaml`` appended to its dagster.yaml)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n" + extra_yaml)
    return path


def clean_env(tmp: Path, moto_endpoint: str | None = None, **extra: str) -> dict[str, str]:
    """The environment of a child process that can reach neither real AWS nor real Google.

    ``moto_endpoint`` is given to boto3 as ``AWS_ENDPOINT_URL_CLOUDWATCH_LOGS``, so that YAML
    written for production (no ``endpoint_url``) is used unchanged.
    """
    env = {k: v for k, v in os.environ.items() if k not in _AWS_VARS + _GCP_VARS}
    env.update({
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "GOOGLE_APPLICATION_CREDENTIALS": str(tmp / "no-google-credentials.json"),
        "CLOUDSDK_CONFIG": str(tmp / "no-gcloud"),
        "DAGSTER_HOME": str(dagster_home(tmp / "dagster_home")),
        "PYTHONUNBUFFERED": "1",
    })
    if moto_endpoint:
        env["AWS_ENDPOINT_URL_CLOUDWATCH_LOGS"] = moto_endpoint
    env.update(extra)
    return env


def logship(args: Sequence[str], env: Mapping[str, str], timeout: float = 60,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m dagster_logship.cli ARGS`` (what the ``dagster-logship`` script runs)."""
    return subprocess.run(
        [sys.executable, "-m", "dagster_logship.cli", *args], env=dict(env), cwd=cwd or REPO,
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )


def start_dagster(args: Sequence[str], env: Mapping[str, str]) -> subprocess.Popen[str]:
    """``python -m dagster ARGS`` started in the repository (the README's working directory)."""
    return subprocess.Popen(
        [sys.executable, "-m", "dagster", *args], env=dict(env), cwd=REPO, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"{proc.args} did not finish in {timeout}s:\n{err[-3000:]}") from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def shipped_lines(text: str) -> list[dict[str, Any]]:
    """The JSON objects among the lines of a process's output."""
    events = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                events.append(value)
    return events


def logs_client(endpoint: str, region: str) -> Any:
    import boto3

    return boto3.session.Session().client(
        "logs", region_name=region, endpoint_url=endpoint,
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )


# -- a fake Cloud Logging that also lists ---------------------------------------------------------


def _parse_time(value: str) -> datetime:
    text = value.replace("Z", "+00:00")
    if "." in text:
        head, _, rest = text.partition(".")
        digits = "".join(ch for ch in rest if ch.isdigit())
        zone = rest[len(digits):]
        text = f"{head}.{(digits + '000000')[:6]}{zone}"
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _lookup(entry: Mapping[str, Any], path: str) -> Any:
    value: Any = entry
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _matches(entry: Mapping[str, Any], expression: str) -> bool:
    """The subset of the Logging query language ``tail`` writes: ``a AND b``, each term
    ``field OP "value"`` with OP one of = >= > <= < (timestamps compared as times)."""
    if not expression.strip():
        return True
    for term in expression.split(" AND "):
        for op in (">=", "<=", "=", ">", "<"):
            field, sep, raw = term.partition(op)
            if sep:
                break
        else:
            raise ValueError(f"unsupported filter term {term!r}")
        field, want = field.strip(), json.loads(raw.strip())
        have = _lookup(entry, field)
        if field == "timestamp":
            if have is None:
                return False
            left, right = _parse_time(str(have)), _parse_time(str(want))
        else:
            left, right = str(have) if have is not None else None, str(want)
        if op == "=" and left != right:
            return False
        if op != "=" and (left is None or not {
            ">=": left >= right, "<=": left <= right, ">": left > right, "<": left < right,
        }[op]):
            return False
    return True


class ListingFakeCloudLogging(FakeCloudLogging):
    """:class:`FakeCloudLogging` plus ``POST /v2/entries:list`` (filter, orderBy, paging).

    ``listed`` records the filter of each list call, so a test can see what ``tail`` asked.
    """

    def __init__(self) -> None:
        super().__init__()
        self.listed: list[str] = []

    def list_entries(self, body: Mapping[str, Any]) -> dict[str, Any]:
        expression = str(body.get("filter") or "")
        self.listed.append(expression)
        projects = {str(name).split("/", 1)[1] for name in body.get("resourceNames") or []}
        found = [
            e for e in self.entries()
            if str(e.get("logName", "")).split("/")[1] in projects and _matches(e, expression)
        ]
        order = str(body.get("orderBy") or "timestamp asc")
        found.sort(key=lambda e: _parse_time(str(e.get("timestamp") or "1970-01-01T00:00:00Z")),
                   reverse=order.endswith("desc"))
        size = int(body.get("pageSize") or 50)
        start = int(body.get("pageToken") or 0)
        page: dict[str, Any] = {"entries": found[start:start + size]}
        if start + size < len(found):
            page["nextPageToken"] = str(start + size)
        return page

    def start(self) -> ListingFakeCloudLogging:
        if self._server is not None:
            return self
        fake = self
        base: Any = _handler_class(self)

        class Handler(base):  # type: ignore[misc, valid-type]
            def do_POST(self) -> None:
                if urllib.parse.urlsplit(self.path).path != "/v2/entries:list":
                    super().do_POST()
                    return
                body = json.loads(self._read() or b"{}")
                self._send(200, json.dumps(fake.list_entries(body)).encode())

        server = ThreadingHTTPServer((self._host, self._port), Handler)
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self
