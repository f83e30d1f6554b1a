"""``dagster-logship`` run in this process (``main([...])``): help, usage errors, config and
credential reports, replay keys and ledger, event lines. In-process moto and the fake Cloud
Logging server stand in for the services; the child-process runs are in integration_tests/cli."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from support import offline_cloud_env

from dagster_logship.cli import main
from dagster_logship.cli._common import Output, format_event, kind_of, parse_timestamp
from dagster_logship.cli.replay import replay_key
from dagster_logship.handlers.cloudwatch import CloudWatchHandler
from dagster_logship.shipping import read_spill
from dagster_logship.testing import FakeCloudLogging, mock_cloudwatch, read_events

SECRET = "s3cr3t-Value-That-Must-Not-Show"


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    offline_cloud_env(monkeypatch, tmp_path)


@pytest.fixture
def logs() -> Iterator[Any]:
    with mock_cloudwatch("us-east-1") as client:
        yield client


@pytest.fixture
def server() -> Iterator[FakeCloudLogging]:
    with FakeCloudLogging() as fake:
        yield fake


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def write(path: Path, loggers: dict[str, Any]) -> str:
    path.write_text(yaml.safe_dump({"loggers": loggers}))
    return str(path)


# -- help and usage ------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["check", "tail", "replay", "validate"])
def test_help_of_each_command(capsys: pytest.CaptureFixture[str], command: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: dagster-logship {command}")


def test_failures_exit_1_in_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Usage errors (exit 2) are in test_cli_usage.py; these are failures of a run."""
    (tmp_path / "empty.yaml").write_text("ops: {}\n")
    json_only = write(tmp_path / "json.yaml", {"json": {"config": {"format": "gcp"}}})
    cases = [
        (["check", str(tmp_path / "empty.yaml")], "no `loggers:` section"),
        (["tail", "--run-id", "r", "-c", json_only], "no cloudwatch_logger or gcp_logger"),
        (["replay", str(tmp_path / "x.jsonl"), "--log-group", "/g"], "x.jsonl: no such file"),
    ]
    for args, message in cases:
        code, _, err = run(capsys, *args)
        assert code == 1, args
        assert len(err.strip().splitlines()) == 1 and message in err, (args, err)
        assert "Traceback" not in err


# -- check ---------------------------------------------------------------------------------------


def test_check_finds_our_loggers_by_their_keys(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, logs: Any,
) -> None:
    config = write(tmp_path / "c.yaml", {
        "cloudwatch": {"config": {"log_group_name": "/g", "log_stream_name": "s"}},
        "json": {"config": {"format": "gcp"}},
        "console": {"config": {"log_level": "ERROR"}},
    })
    code, out, _ = run(capsys, "check", config, "--create")
    assert code == 0, out
    assert "logger 'cloudwatch' (cloudwatch_logger)" in out
    assert "logger 'json' (json_console_logger)" in out
    assert "logger 'console': not a dagster-logship logger (skipped" in out
    assert "result: 2 logger(s) checked, ok" in out
    assert "credentials: from environment variables" in out
    assert [e["message"] for e in read_events("/g", "s", client=logs, flush=False)] == [
        "dagster-logship check: probe event (safe to ignore)"]

    code, out, _ = run(capsys, "check", config, "--logger", "console", "--kind", "json")
    assert code == 0 and "logger 'console' (json_console_logger)" in out
    code, _, err = run(capsys, "check", config, "--logger", "nope")
    assert code == 1
    assert "no logger 'nope' under `loggers:` (found: cloudwatch, console, json)" in err
    code, _, err = run(capsys, "check", config, "--logger", "console")
    assert code == 1 and "add --kind" in err


def test_check_reports_each_problem_and_shows_no_secret(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, logs: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    config = write(tmp_path / "c.yaml", {
        "unset_env": {"config": {"log_group_name": {"env": "NO_SUCH_GROUP_VAR"}}},
        "unknown_key": {"config": {"log_group_name": "/g", "log_groop": "x"}},
        "bad_stream": {"config": {"log_group_name": "/g", "log_stream_name": "a:b"}},
        "no_create": {"config": {"log_group_name": "/missing", "create_log_group": False,
                                 "aws_secret_access_key": SECRET, "aws_access_key_id": "AKIA1"}},
        "no_probe": {"config": {"log_group_name": "/g", "retention_in_days": 7}},
    })
    code, out, _ = run(capsys, "check", config, "--logger", "no_probe", "--no-probe")
    assert code == 0
    assert "logs:PutRetentionPolicy" in out and "probe not sent (--no-probe)" in out
    assert not logs.describe_log_groups()["logGroups"]

    code, out, err = run(capsys, "check", config, "--create")
    assert code == 1
    assert 'NO_SUCH_GROUP_VAR' in out and "which is not set" in out
    assert 'unexpected config entry "log_groop"' in out
    assert "log_stream_name: got 'a:b'; a log stream name may not contain ':' or '*'" in out
    assert "create_log_group is false" in out
    assert "result: 5 logger(s) checked, 4 of 5 failed" in out
    assert SECRET not in out + err



def test_check_without_credentials_or_region(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = write(tmp_path / "c.yaml", {"cw": {"config": {"log_group_name": "/g"}}})
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    code, out, _ = run(capsys, "check", config)
    assert code == 1 and "region: none" in out
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    code, out, _ = run(capsys, "check", config)
    assert code == 1 and "credentials: none found" in out
    profile = write(tmp_path / "p.yaml", {"cw": {"config": {"log_group_name": "/g",
                                                            "aws_profile": "nope"}}})
    code, out, _ = run(capsys, "check", profile)
    assert code == 1 and "FAIL  credentials:" in out and "aws_profile" in out


def test_check_gcp_against_the_fake_server(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, server: FakeCloudLogging,
) -> None:
    config = write(tmp_path / "g.yaml", {"gcp": {"config": {
        "project": "p1", "api_endpoint": server.url, "labels": {"team": "x"}}}})
    code, out, _ = run(capsys, "check", config, "--create")
    assert code == 0, out
    assert "credentials: anonymous" in out and "nothing to create" in out
    [entry] = server.entries()
    assert entry["labels"]["team"] == "x"
    server.partial_next(1, {0: "INVALID_ARGUMENT"})
    code, out, _ = run(capsys, "check", config)
    assert code == 1 and "FAIL  probe: refused by Cloud Logging (INVALID_ARGUMENT" in out
    server.fail_next(1, status=503)
    code, out, _ = run(capsys, "check", config)
    assert code == 1 and "did not accept it now" in out


# -- replay --------------------------------------------------------------------------------------


def spill_plain_records(tmp_path: Path, logs: Any, messages: list[str]) -> Path:
    """Records made outside Dagster (no log_message_id) that could not be delivered."""
    spill = tmp_path / "plain.spill.jsonl"
    handler = CloudWatchHandler(log_group_name="/absent", log_stream_name="s",
                                create_log_group=False, spill_path=str(spill),
                                retry_deadline=0.0, flush_interval=0.01)
    log = logging.Logger(f"plain-{uuid.uuid4().hex[:6]}")
    log.addHandler(handler)
    for message in messages:
        log.warning(message)
    assert handler.flush(10)
    handler.close()
    return spill


def test_replay_of_records_without_ids_is_once_per_destination(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, logs: Any,
) -> None:
    spill = spill_plain_records(tmp_path, logs, ["same", "same", "other"])
    spilled = list(read_spill(spill))
    assert len(spilled) == 3 and all(s["log_message_id"] is None for s in spilled)
    dest = ["--log-group", "/replayed", "--log-stream", "plain", "--region", "us-east-1"]
    code, out, _ = run(capsys, "replay", str(spill), *dest)
    assert code == 0 and "3 delivered, 0 rejected, 0 not sent, 0 skipped" in out
    assert "spilled for cloudwatch-logs" in out
    code, out, _ = run(capsys, "replay", str(spill), *dest)
    assert code == 0 and "0 delivered, 0 rejected, 0 not sent, 3 skipped" in out
    arrived = read_events("/replayed", "plain", client=logs, flush=False)
    assert [e["message"] for e in arrived] == ["same", "same", "other"]
    assert arrived[0]["source"]["function"] == "spill_plain_records"

    # Another destination is another replay; --force sends again.
    code, out, _ = run(capsys, "replay", str(spill), "--log-group", "/elsewhere",
                       "--log-stream", "s", "--region", "us-east-1")
    assert code == 0 and "3 delivered" in out
    code, out, _ = run(capsys, "replay", str(spill), *dest, "--force")
    assert code == 0 and "3 delivered" in out
    assert len(read_events("/replayed", "plain", client=logs, flush=False)) == 6


def test_replay_keys() -> None:
    dagster = {"log_message_id": "m1", "message": "x"}
    assert replay_key(dagster, 5) == "id:m1"
    assert replay_key({**dagster, "part": {"index": 2, "count": 3}}, 0) == "id:m1:2"
    plain = {"log_message_id": None, "message": "x", "timestamp": "t"}
    assert replay_key(plain, 0) != replay_key(plain, 1)
    assert replay_key(plain, 0) == replay_key(dict(reversed(list(plain.items()))), 0)


def test_replay_splits_what_the_new_destination_cannot_take(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, server: FakeCloudLogging,
) -> None:
    """A record that fitted CloudWatch (1 MB) is split into parts for Cloud Logging (256 KiB)."""
    spill = tmp_path / "big.jsonl"
    now = datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")
    event = {"timestamp": now, "level": "INFO", "message": "é" * 400_000,
             "log_message_id": "big-1", "run_id": "r1", "job_name": "j", "step_key": None,
             "logship_spill": {"reason": "test", "destination": "cloudwatch-logs x"}}
    spill.write_text(json.dumps(event) + "\n")
    code, out, _ = run(capsys, "replay", str(spill), "--project", "p", "--api-endpoint",
                       server.url)
    assert code == 0, out
    assert "1 spilled record(s), " in out and "1 skipped" not in out
    entries = server.entries()
    parts = sorted(entries, key=lambda e: e["jsonPayload"]["part"]["index"])
    assert len(parts) >= 2
    assert "".join(p["jsonPayload"]["message"] for p in parts) == event["message"]
    assert [p["insertId"] for p in parts] == [f"big-1-{i}" for i in range(1, len(parts) + 1)]


# -- pieces --------------------------------------------------------------------------------------


def test_kind_of() -> None:
    assert kind_of("x", {"log_group_name": "/g"}) == "cloudwatch"
    assert kind_of("x", {"api_endpoint": "http://h"}) == "gcp"
    assert kind_of("x", {"format": "gcp"}) == "json"
    assert kind_of("my_cloudwatch", {"log_level": "INFO"}) == "cloudwatch"
    assert kind_of("console", {"log_level": "INFO"}) is None


def test_parse_timestamp() -> None:
    base = datetime(2026, 11, 21, 9, 8, 43, tzinfo=timezone.utc).timestamp()
    assert parse_timestamp("2026-11-21T09:08:43.882372Z") == pytest.approx(base + 0.882372)
    assert parse_timestamp("2026-11-21T09:08:43.123456789Z") == pytest.approx(base + 0.123457)
    assert parse_timestamp("2026-11-21T09:08:43Z") == base
    assert parse_timestamp("2026-11-21T10:08:43+01:00") == base
    assert parse_timestamp("yesterday") is None and parse_timestamp(None) is None


def test_format_event() -> None:
    line = format_event({
        "timestamp": "2026-11-21T09:08:43.882372Z", "level": "ERROR", "run_id": "abcdef123456",
        "step_key": "load", "event_type": "STEP_FAILURE", "message": "boom\nsecond",
        "exception": {"type": "ValueError", "message": "bad", "traceback": None},
        "part": {"index": 1, "count": 2},
    })
    assert line.splitlines() == [
        "2026-11-21 09:08:43.882 ERROR    abcdef12 load STEP_FAILURE  boom",
        "    second [part 1/2]",
        "    ValueError: bad",
    ]
    assert format_event({"message": "raw"}, fallback_ms=0).startswith("1970-01-01 00:00:00.000")


def test_output_scrubs_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    out = Output()
    out.add_secret(SECRET)
    out.add_secret("abc")  # too short to be worth replacing
    out.line(f"key={SECRET} abc")
    assert capsys.readouterr().out == "key=*** abc\n"


def test_tail_polls_are_bounded(capsys: pytest.CaptureFixture[str], logs: Any) -> None:
    logs.create_log_group(logGroupName="/quiet")
    code, out, _ = run(capsys, "tail", "--log-group", "/quiet", "--job", "nothing", "--follow",
                       "--max-polls", "3", "--poll-interval", "0.01")
    assert code == 0 and out == ""
    code, _, err = run(capsys, "tail", "--log-group", "/quiet", "--job", "nothing",
                       "--since", "2h")
    assert code == 0 and "no events found in log group /quiet" in err
    for follow in ([], ["--follow", "--max-polls", "50", "--poll-interval", "0.01"]):
        code, out, err = run(capsys, "tail", "--log-group", "/absent", "--run-id", "r", *follow)
        assert code == 1 and out == ""
        assert err.splitlines() == [
            "dagster-logship tail: error: log group '/absent' does not exist (region us-east-1): "
            "check the group name and the region (the logger creates its group at its first "
            "send, so no run has shipped there yet)"]
