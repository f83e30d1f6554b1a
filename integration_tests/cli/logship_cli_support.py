"""Shared by the CLI and examples integration tests: a clean environment for child processes
(dummy AWS credentials, no Google credentials, a temporary DAGSTER_HOME), runners for the
``dagster-logship`` and ``dagster`` commands, a CloudWatch Logs client.

Imported by name (this directory is put on ``sys.path`` by the conftest files), since conftest
modules cannot be imported under ``--import-mode=importlib``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

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

