"""The ``dagster-logship`` command end to end: a real child process (``python -m
dagster_logship.cli``, and the installed console script) against a moto server process, a moto
server that enforces IAM, and the fake Cloud Logging server; the logs it reads come from real
Dagster runs, the spill files it replays from real handlers that could not deliver."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml
from dagster._core.test_utils import instance_for_test
from logship_cli_jobs import orders
from logship_cli_support import (
    EXAMPLES,
    PROJECT,
    ListingFakeCloudLogging,
    clean_env,
    logship,
)

from dagster_logship import flush_all
from dagster_logship.shipping import read_spill
from dagster_logship.testing import read_events

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY"


def write_yaml(path: Path, data: Mapping[str, Any]) -> str:
    path.write_text(yaml.safe_dump(dict(data)))
    return str(path)


def cw_config(endpoint: str, group: str, **extra: Any) -> dict[str, Any]:
    return {"loggers": {"cloudwatch": {"config": {
        "log_group_name": group, "aws_region": "us-east-1", "endpoint_url": endpoint,
        "flush_interval": 0.05, **extra}}}}


def gcp_config(server: ListingFakeCloudLogging, **extra: Any) -> dict[str, Any]:
    return {"loggers": {"gcp": {"config": {
        "project": PROJECT, "api_endpoint": server.url, "log_level": "DEBUG",
        "flush_interval": 0.05, "retry_initial_backoff": 0.01, **extra}}}}


def one_line_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


# -- help and usage ------------------------------------------------------------------------------


def test_console_script_and_help(tmp_path: Path) -> None:
    script = shutil.which("dagster-logship", path=os.path.dirname(sys.executable))
    assert script is not None, "the console script is installed with the package"
    env = clean_env(tmp_path)
    result = subprocess.run([script, "--help"], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0
    for command in ("check", "tail", "replay", "validate"):
        assert command in result.stdout
    check_help = logship(["check", "--help"], env)
    assert check_help.returncode == 0 and "--create" in check_help.stdout


def test_usage_errors_are_one_line_and_exit_2(tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    line = one_line_error(logship(["tail", "--log-group", "/g"], env), 2)
    assert "one of the arguments --run-id --job --stream is required" in line


# -- check ----------------------------------------------------------------------------------------


def test_check_creates_nothing_unless_asked(
    tmp_path: Path, moto_endpoint: str, logs: Any,
) -> None:
    group = f"/check/{uuid.uuid4().hex[:8]}"
    config = write_yaml(tmp_path / "prod.yaml", cw_config(
        moto_endpoint, group, log_stream_name="{job_name}/{run_id}", retention_in_days=14,
        aws_access_key_id="AKIAEXAMPLEKEY12", aws_secret_access_key=SECRET))
    env = clean_env(tmp_path)

    first = logship(["check", config], env)
    assert first.returncode == 1, first.stdout + first.stderr
    assert f"FAIL  destination: log group '{group}' does not exist (nothing created)" in (
        first.stdout)
    assert ("IAM actions the logger needs: logs:PutLogEvents, logs:CreateLogStream, "
            "logs:CreateLogGroup, logs:PutRetentionPolicy") in first.stdout
    assert "--create" in first.stdout
    assert not logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]

    second = logship(["check", config, "--create"], env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "ok    probe: one event delivered" in second.stdout
    assert "result: 1 logger(s) checked, ok" in second.stdout
    [made] = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
    assert made["retentionInDays"] == 14
    probe = read_events(group, "dagster-logship-check/probe", client=logs, flush=False)
    assert [e["message"] for e in probe] == ["dagster-logship check: probe event (safe to ignore)"]

    for result in (first, second):  # the secret key never appears, the key id only masked
        assert SECRET not in result.stdout + result.stderr
        assert "AKIAEXAMPLEKEY12" not in result.stdout
        assert "access key …EY12" in result.stdout


def test_check_names_the_missing_iam_action(tmp_path: Path, iam_moto: SimpleNamespace) -> None:
    env = clean_env(tmp_path)
    for user, action, extra in (
        ("no-create-group", "logs:CreateLogGroup", {}),
        ("no-retention", "logs:PutRetentionPolicy", {"retention_in_days": 7}),
    ):
        key_id, secret = iam_moto.keys[user]
        config = write_yaml(tmp_path / f"{user}.yaml", cw_config(
            iam_moto.url, f"/iam/{user}", log_stream_name="s", aws_access_key_id=key_id,
            aws_secret_access_key={"env": "IAM_TEST_SECRET"}, **extra))
        result = logship(["check", config, "--create"], {**env, "IAM_TEST_SECRET": secret})
        assert result.returncode == 1, result.stdout + result.stderr
        assert f"lacks the IAM permission {action}" in result.stdout, result.stdout
        assert secret not in result.stdout + result.stderr


def test_check_gcp_probe_and_permission_denied(
    tmp_path: Path, gcp_server: ListingFakeCloudLogging,
) -> None:
    env = clean_env(tmp_path)
    config = write_yaml(tmp_path / "gcp.yaml", {"loggers": {
        "gcp": {"config": {"project": PROJECT, "api_endpoint": gcp_server.url,
                           "log_name": "check-probe"}},
        "console": {"config": {"log_level": "ERROR"}},  # Dagster's own: skipped
    }})
    result = logship(["check", config], env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "logger 'console': not a dagster-logship logger (skipped" in result.stdout
    assert f"ok    probe: one entry written to projects/{PROJECT}/logs/check-probe" in (
        result.stdout)
    probes = [e for e in gcp_server.entries()
              if e["logName"] == f"projects/{PROJECT}/logs/check-probe"]
    assert [e["jsonPayload"]["message"] for e in probes] == [
        "dagster-logship check: probe event (safe to ignore)"]

    gcp_server.fail_next(1, status=403)
    denied = logship(["check", config], env)
    assert denied.returncode == 1
    assert "roles/logging.logWriter" in denied.stdout

    no_endpoint = write_yaml(tmp_path / "gcp-prod.yaml", {"loggers": {"gcp": {"config": {
        "project": PROJECT}}}})
    no_credentials = logship(["check", no_endpoint], env)
    assert no_credentials.returncode == 1
    assert "FAIL  credentials: none usable" in no_credentials.stdout


def test_check_reports_bad_config_in_the_loggers_words(tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    config = write_yaml(tmp_path / "bad.yaml", {"loggers": {"cloudwatch": {"config": {
        "log_group_name": "/g", "overflow": "explode", "aws_secret_access_key": SECRET,
        "aws_access_key_id": "AKIAEXAMPLEKEY12"}}}})
    result = logship(["check", config], env)
    assert result.returncode == 1
    assert ("FAIL  config: overflow: got 'explode'. Fix: use one of block, drop_oldest, "
            "drop_newest") in result.stdout
    assert SECRET not in result.stdout + result.stderr
    missing = logship(["check", str(tmp_path / "nope.yaml")], env)
    assert "nope.yaml: no such file" in one_line_error(missing, 1)


# -- tail -----------------------------------------------------------------------------------------


def run_orders(config: dict[str, Any], run_id: str | None = None) -> str:
    with instance_for_test() as instance:
        result = orders.execute_in_process(run_config=config, instance=instance, run_id=run_id)
        assert result.success
    assert flush_all(10)
    return result.run_id


def test_tail_cloudwatch_follows_a_run_until_it_ends(
    tmp_path: Path, moto_endpoint: str, logs: Any,
) -> None:
    group = f"/tail/{uuid.uuid4().hex[:8]}"
    config = cw_config(moto_endpoint, group, log_level="DEBUG")
    config_path = write_yaml(tmp_path / "run.yaml", config)
    run_id = str(uuid.uuid4())
    env = clean_env(tmp_path)
    follower = subprocess.Popen(
        [sys.executable, "-m", "dagster_logship.cli", "tail", "-c", config_path,
         "--run-id", run_id, "--follow", "--poll-interval", "0.2", "--timeout", "90"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # The log group does not exist until the run's first batch: tail keeps polling.
        run_orders(config, run_id=run_id)
        out, err = follower.communicate(timeout=90)  # ends by itself after RUN_SUCCESS
    finally:
        if follower.poll() is None:
            follower.kill()
    assert follower.returncode == 0, err
    arrived = read_events(group, client=logs, flush=False)
    lines = out.splitlines()
    assert sum(1 for line in lines if not line.startswith("    ")) == len(arrived)
    text = out
    assert "STEP_START" in text and "RUN_SUCCESS" in text
    fetched = next(line for line in lines if line.endswith("fetched 4 orders"))
    assert f" INFO     {run_id[:8]} fetch  fetched 4 orders" in fetched
    warning = lines.index(next(line for line in lines if "published 4 orders" in line))
    assert lines[warning + 1] == "    second line of the message"
    assert "ValueError: bad row 7" in text
    assert text.index("fetched 4 orders") < text.index("published 4 orders") < text.index(
        "RUN_SUCCESS")

    stream = logship(["tail", "--log-group", group, "--endpoint-url", moto_endpoint,
                      "--region", "us-east-1", "--stream", f"orders/{run_id}", "--json"], env)
    assert stream.returncode == 0, stream.stderr
    assert len(stream.stdout.splitlines()) == len(arrived)


def test_tail_gcp_by_run_and_by_job(
    tmp_path: Path, gcp_server: ListingFakeCloudLogging,
) -> None:
    config = gcp_config(gcp_server, log_name="tail-test")
    first = run_orders(config)
    second = run_orders(config)
    env = clean_env(tmp_path)
    by_run = logship(["tail", "--project", PROJECT, "--api-endpoint", gcp_server.url,
                      "--log-name", "tail-test", "--run-id", first], env)
    assert by_run.returncode == 0, by_run.stderr
    assert "fetched 4 orders" in by_run.stdout and "RUN_SUCCESS" in by_run.stdout
    assert second[:8] not in by_run.stdout
    assert f'labels.run_id="{first}"' in gcp_server.listed[-1]
    by_job = logship(["tail", "-c", write_yaml(tmp_path / "g.yaml", config), "--job", "orders"],
                     env)
    assert by_job.returncode == 0, by_job.stderr
    assert first[:8] in by_job.stdout and second[:8] in by_job.stdout
    assert by_job.stdout.count("fetched 4 orders") == 2


# -- replay ---------------------------------------------------------------------------------------


def test_replay_cloudwatch_spill_once(tmp_path: Path, moto_endpoint: str, logs: Any) -> None:
    """A run whose group could not be created spills; replay sends it to the run's stream,
    and replaying again sends nothing."""
    group = f"/replay/{uuid.uuid4().hex[:8]}"
    spill = tmp_path / "spill.jsonl"
    run_id = run_orders(cw_config(moto_endpoint, group, create_log_group=False,
                                  spill_path=str(spill), retry_deadline=0.0))
    spilled = list(read_spill(spill))
    assert spilled and {s["run_id"] for s in spilled} == {run_id}
    config = write_yaml(tmp_path / "replay.yaml", cw_config(moto_endpoint, group))
    env = clean_env(tmp_path)

    first = logship(["replay", str(spill), "-c", config], env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"{len(spilled)} delivered, 0 rejected, 0 not sent, 0 skipped" in first.stdout
    arrived = read_events(group, f"orders/{run_id}", client=logs, flush=False)
    assert [e["log_message_id"] for e in arrived] == [s["log_message_id"] for s in spilled]
    assert all("logship_spill" not in e for e in arrived)

    again = logship(["replay", str(spill), "-c", config], env)
    assert again.returncode == 0, again.stdout
    assert f"0 delivered, 0 rejected, 0 not sent, {len(spilled)} skipped" in again.stdout
    assert len(read_events(group, f"orders/{run_id}", client=logs, flush=False)) == len(spilled)
    assert (tmp_path / "spill.jsonl.replayed").stat().st_mode & 0o777 == 0o600


def test_replay_gcp_with_flags_retries_and_keeps_insert_ids(
    tmp_path: Path, gcp_server: ListingFakeCloudLogging,
) -> None:
    spill = tmp_path / "gcp-spill.jsonl"
    gcp_server.fail_next(50, status=403)  # every write of the run is refused: all spilled
    try:
        run_id = run_orders(gcp_config(gcp_server, log_name="replay-test", spill_path=str(spill)))
    finally:
        gcp_server.clear()
    spilled = list(read_spill(spill))
    assert spilled
    gcp_server.fail_next(1, status=503)  # the replay's first request: retried
    env = clean_env(tmp_path)
    flags = ["--project", PROJECT, "--api-endpoint", gcp_server.url, "--log-name", "replayed"]
    result = logship(["replay", str(spill), *flags], env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(spilled)} delivered" in result.stdout
    entries = [e for e in gcp_server.entries() if e["logName"].endswith("/logs/replayed")]
    assert sorted(e["insertId"] for e in entries) == sorted(s["log_message_id"] for s in spilled)
    assert {e["labels"]["run_id"] for e in entries} == {run_id}
    assert 503 in [r["status"] for r in gcp_server.requests()]
    dry = logship(["replay", str(spill), *flags, "--dry-run"], env)
    assert "dry run: 0 event(s) would be sent" in dry.stdout


def test_replay_missing_file_is_one_line(tmp_path: Path, moto_endpoint: str) -> None:
    env = clean_env(tmp_path)
    result = logship(["replay", str(tmp_path / "none.jsonl"), "--log-group", "/g",
                      "--endpoint-url", moto_endpoint], env)
    assert "none.jsonl: no such file" in one_line_error(result, 1)


# -- validate -------------------------------------------------------------------------------------


def test_validate_lists_loggers_that_would_not_run(tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    hello = logship(["validate", "-f", str(EXAMPLES / "hello_logs.py")], env)
    assert hello.returncode == 1
    for job in ("prod_logs", "prod_logs_gcp", "prod_logs_json"):
        assert f"FAIL  job {job!r}: logger" in hello.stdout
    assert "local_logs" not in hello.stdout  # Dagster's console logger is not ours
    with_yaml = logship(["validate", "-f", str(EXAMPLES / "hello_logs.py"), "-a", "prod_logs",
                         "-c", str(EXAMPLES / "run_config" / "prod_logs.yaml")], env)
    assert with_yaml.returncode == 0, with_yaml.stdout + with_yaml.stderr
    located = logship(["validate", "-f", str(EXAMPLES / "code_location.py"),
                       "--ignore-job", "__ASSET_JOB"], env)
    assert located.returncode == 0, located.stdout + located.stderr

