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
    clean_env,
    logship,
)
from support import ListingFakeCloudLogging

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
    """A few of tests/cli/test_cli_usage.py's cases, through the real entry point."""
    env = clean_env(tmp_path)
    line = one_line_error(logship(["tail", "--log-group", "/g"], env), 2)
    assert "one of the arguments --run-id --job --stream is required" in line
    (tmp_path / "bad.yaml").write_text("loggers: {cloudwatch: [")
    for args, said in (
        (["check", str(tmp_path / "none.yaml")], "none.yaml: no such file"),
        (["tail", "--job", "j", "-c", str(tmp_path / "bad.yaml")], "bad.yaml: not valid YAML"),
        (["check", str(tmp_path / "bad.yaml"), "--create", "--no-probe"], "not allowed with"),
        (["replay", "s.jsonl", "--log-group", "/g", "--project", "p"], "two destinations"),
        (["validate", "-m", "m", "--frobnicate"], "unrecognized arguments: --frobnicate"),
    ):
        line = one_line_error(logship(args, env), 2)
        assert said in line and line.endswith("--help)"), line


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
    assert "nope.yaml: no such file" in one_line_error(missing, 2)  # a usage error


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
    """Follow a run by the short id tail prints, from before the run starts (its group exists,
    as in production; its stream does not yet) until it ends."""
    group = f"/tail/{uuid.uuid4().hex[:8]}"
    logs.create_log_group(logGroupName=group)
    base = cw_config(moto_endpoint, group, log_level="DEBUG")
    # Two -c files merged, as `dagster job execute -c` merges them: the endpoint in the second.
    endpoint = base["loggers"]["cloudwatch"]["config"].pop("endpoint_url")
    first = write_yaml(tmp_path / "run.yaml", base)
    second = write_yaml(tmp_path / "local.yaml", {"loggers": {"cloudwatch": {"config": {
        "endpoint_url": endpoint}}}})
    run_id = str(uuid.uuid4())
    env = clean_env(tmp_path)
    follower = subprocess.Popen(
        [sys.executable, "-m", "dagster_logship.cli", "tail", "-c", first, "-c", second,
         "--run-id", run_id[:8], "--follow", "--poll-interval", "0.2", "--timeout", "90"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        run_orders(cw_config(moto_endpoint, group, log_level="DEBUG"), run_id=run_id)
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


def test_tail_cloudwatch_short_run_id_shared_by_two_runs(
    tmp_path: Path, moto_endpoint: str, logs: Any,
) -> None:
    group = f"/tail/{uuid.uuid4().hex[:8]}"
    config = cw_config(moto_endpoint, group)
    shared = uuid.uuid4().hex[:8]
    first = run_orders(config, run_id=shared + str(uuid.uuid4())[8:])
    second = run_orders(config, run_id=shared + str(uuid.uuid4())[8:])
    env = clean_env(tmp_path)
    flags = ["-c", write_yaml(tmp_path / "run.yaml", config)]
    line = one_line_error(logship(["tail", *flags, "--run-id", shared], env), 1)
    assert f"run id {shared!r} is ambiguous: 2 runs start with it: " in line
    assert all(f"{run} (job orders)" in line for run in (first, second))
    one = logship(["tail", *flags, "--run-id", first[:20]], env)
    assert one.returncode == 0, one.stderr
    assert one.stdout.count("fetched 4 orders") == 1


def test_tail_follow_on_a_missing_log_group_says_so(tmp_path: Path, moto_endpoint: str) -> None:
    """Not a silent wait: one line naming the group, the region and the endpoint (given in
    the YAML, or by AWS_ENDPOINT_URL_CLOUDWATCH_LOGS as for production YAML)."""
    group = f"/tail/{uuid.uuid4().hex[:8]}"
    follow = ["--follow", "--poll-interval", "0.2", "--timeout", "60"]
    with_endpoint = write_yaml(tmp_path / "run.yaml", cw_config(moto_endpoint, group))
    result = logship(["tail", "-c", with_endpoint, "--run-id", "302fc568", *follow],
                     clean_env(tmp_path))
    assert one_line_error(result, 1) == (
        f"dagster-logship tail: error: log group '{group}' does not exist (region us-east-1, "
        f"endpoint {moto_endpoint}): check the group name and the region (the logger creates "
        "its group at its first send, so no run has shipped there yet)")
    production = write_yaml(tmp_path / "prod.yaml", {"loggers": {"cloudwatch": {"config": {
        "log_group_name": group, "aws_region": "eu-west-1"}}}})
    result = logship(["tail", "-c", production, "--job", "orders", *follow],
                     clean_env(tmp_path, moto_endpoint))
    assert f"log group '{group}' does not exist (region eu-west-1, endpoint {moto_endpoint})" in (
        one_line_error(result, 1))


def test_tail_gcp_by_run_and_by_job(
    tmp_path: Path, gcp_server: ListingFakeCloudLogging,
) -> None:
    config = gcp_config(gcp_server, log_name="tail-test")
    first = run_orders(config)
    second = run_orders(config)
    env = clean_env(tmp_path)
    flags = ["--project", PROJECT, "--api-endpoint", gcp_server.url, "--log-name", "tail-test"]
    by_run = logship(["tail", *flags, "--run-id", first], env)
    assert by_run.returncode == 0, by_run.stderr
    assert "fetched 4 orders" in by_run.stdout and "RUN_SUCCESS" in by_run.stdout
    assert second[:8] not in by_run.stdout
    assert f'labels.run_id="{first}"' in gcp_server.listed[-1]
    # The short id tail prints (and Dagster's UI shows) is enough.
    short = logship(["tail", *flags, "--run-id", first[:8]], env)
    assert short.returncode == 0, short.stderr
    assert short.stdout == by_run.stdout
    assert gcp_server.listed[-1] == (f'logName="projects/{PROJECT}/logs/tail-test" AND '
                                     f'labels.run_id:"{first[:8]}"')
    by_job = logship(["tail", "-c", write_yaml(tmp_path / "g.yaml", config), "--job", "orders"],
                     env)
    assert by_job.returncode == 0, by_job.stderr
    assert first[:8] in by_job.stdout and second[:8] in by_job.stdout
    assert by_job.stdout.count("fetched 4 orders") == 2


def test_tail_gcp_short_run_id_shared_by_two_runs(
    tmp_path: Path, gcp_server: ListingFakeCloudLogging,
) -> None:
    config = gcp_config(gcp_server, log_name="tail-shared")
    shared = uuid.uuid4().hex[:8]
    first = run_orders(config, run_id=shared + str(uuid.uuid4())[8:])
    second = run_orders(config, run_id=shared + str(uuid.uuid4())[8:])
    env = clean_env(tmp_path)
    flags = ["--api-endpoint", gcp_server.url, "--project", PROJECT, "--log-name", "tail-shared"]
    line = one_line_error(logship(["tail", *flags, "--run-id", shared], env), 1)
    assert line == (f"dagster-logship tail: error: run id {shared!r} is ambiguous: 2 runs start "
                    f"with it: {min(first, second)} (job orders), {max(first, second)} (job "
                    "orders); give more of the run id")
    follow = logship(["tail", *flags, "--run-id", second[:12], "--follow", "--poll-interval",
                      "0.1", "--timeout", "60"], env)
    assert follow.returncode == 0, follow.stderr
    assert follow.stdout.count("RUN_SUCCESS") == 1 and first[:8] in follow.stdout
    # Once the start names one run, the whole id is asked for.
    assert gcp_server.listed[-1].startswith(
        f'logName="projects/{PROJECT}/logs/tail-shared" AND labels.run_id="{second}"')


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


JOBS_WITHOUT_LOGGERS_CONFIG = """\
from dagster import job, op

from dagster_logship import cloudwatch_logger, gcp_logger, json_console_logger


@op
def step() -> None: ...


@job(logger_defs={"cloudwatch": cloudwatch_logger})
def prod_logs() -> None: step()


@job(logger_defs={"gcp": gcp_logger, "json": json_console_logger})
def prod_logs_gcp() -> None: step()


@job
def local_logs() -> None: step()
"""


def test_validate_lists_loggers_that_would_not_run(tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    jobs = tmp_path / "jobs.py"
    jobs.write_text(JOBS_WITHOUT_LOGGERS_CONFIG)
    listed = logship(["validate", "-f", str(jobs)], env)
    assert listed.returncode == 1
    for job, key in (("prod_logs", "cloudwatch"), ("prod_logs_gcp", "gcp"),
                     ("prod_logs_gcp", "json")):
        assert f"FAIL  job {job!r}: logger {key!r}" in listed.stdout
    assert "local_logs" not in listed.stdout  # Dagster's console logger is not ours
    assert "result: 3 logger(s) would not run" in listed.stdout
    with_yaml = logship(["validate", "-f", str(jobs), "-a", "prod_logs",
                         "-c", str(EXAMPLES / "run_config" / "prod_logs.yaml")], env)
    assert with_yaml.returncode == 0, with_yaml.stdout + with_yaml.stderr
    # The examples name their loggers in each job's default run config: nothing to report.
    for example in ("hello_logs.py", "code_location.py"):
        checked = logship(["validate", "-f", str(EXAMPLES / example), "--ignore-job",
                           "__ASSET_JOB"], env)
        assert checked.returncode == 0, checked.stdout + checked.stderr
