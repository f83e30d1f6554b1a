"""``tail --run-id`` with the short id tail prints (and Dagster's UI shows): the filter each
service is sent, the prefix check here, ambiguous starts refused with both runs named, and a
missing log group reported at once, with or without ``--follow``. In-process moto and the fake
Cloud Logging server (through Google's real client) stand in for the services; real Dagster
runs are in integration_tests/cli."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud.logging import Client
from support import offline_cloud_env

from dagster_logship.cli import main
from dagster_logship.cli._common import CliError
from dagster_logship.cli.tail import RunSelector, cloudwatch_pattern, gcp_label_filter
from dagster_logship.testing import FakeCloudLogging, mock_cloudwatch

RUN_A = "abcd1234-0000-4000-8000-000000000001"
RUN_B = "abcd1234-9999-4000-8000-000000000002"  # same first 8 characters as RUN_A
RUN_C = "ffff0000-1111-4222-8333-444444444444"
PROJECT = "tail-project"


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    offline_cloud_env(monkeypatch, tmp_path)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def event(run_id: str, message: str, seconds: float, event_type: str | None = None,
          job: str = "orders") -> dict[str, Any]:
    when = datetime.now(timezone.utc) - timedelta(minutes=5) + timedelta(seconds=seconds)
    return {"timestamp": when.isoformat().replace("+00:00", "Z"), "level": "INFO",
            "message": message, "run_id": run_id, "job_name": job, "step_key": "fetch",
            "event_type": event_type}


EVENTS = [
    event(RUN_A, "a: fetched", 1), event(RUN_B, "b: fetched", 2),
    event(RUN_C, "c: fetched", 3), event(RUN_C, "c: done", 4, "RUN_SUCCESS"),
    event(RUN_A, "a: done", 5, "RUN_SUCCESS", job="orders_v2"),
]


# -- pieces ----------------------------------------------------------------------------------------


def test_run_selector_takes_a_whole_id_or_its_start() -> None:
    whole = RunSelector(RUN_C)
    assert whole.full == RUN_C and whole.matches(RUN_C) and not whole.matches(RUN_C[:8])
    short = RunSelector(RUN_C[:8])
    assert short.full is None and short.matches(RUN_C) and not short.matches(RUN_A)
    short.resolve([{"run_id": RUN_C}, {"run_id": RUN_A}, {"message": "no run"}])
    assert short.full == RUN_C  # RUN_A does not start with it: pinned to the one run

    shared = RunSelector("abcd1234")
    with pytest.raises(CliError) as ambiguous:
        shared.resolve([{"run_id": RUN_B, "job_name": "orders"},
                        {"run_id": RUN_A, "job_name": "orders_v2"}])
    assert str(ambiguous.value) == (
        f"run id 'abcd1234' is ambiguous: 2 runs start with it: {RUN_A} (job orders_v2), "
        f"{RUN_B} (job orders); give more of the run id")
    assert shared.full is None
    custom = RunSelector("nightly-2026-11-21")  # Dagster accepts any run id string
    assert custom.full is None and custom.matches("nightly-2026-11-21")


def test_filters_sent_to_each_service() -> None:
    assert cloudwatch_pattern("run_id", RUN_C, prefix=False) == f'{{ $.run_id = "{RUN_C}" }}'
    assert cloudwatch_pattern("run_id", "ffff0000", prefix=True) == '{ $.run_id = "ffff0000*" }'
    assert cloudwatch_pattern("run_id", 'a"b', prefix=True) == ""  # every event, checked here
    assert cloudwatch_pattern("job_name", "my job", prefix=False) == '{ $.job_name = "my job" }'
    assert gcp_label_filter("run_id", "ffff0000", prefix=True) == 'labels.run_id:"ffff0000"'
    assert gcp_label_filter("run_id", RUN_C, prefix=False) == f'labels.run_id="{RUN_C}"'


# -- CloudWatch (moto) -----------------------------------------------------------------------------


@pytest.fixture
def cw_group() -> Iterator[str]:
    with mock_cloudwatch("us-east-1") as logs:
        logs.create_log_group(logGroupName="/runs")
        logs.create_log_stream(logGroupName="/runs", logStreamName="s")
        logs.put_log_events(logGroupName="/runs", logStreamName="s", logEvents=[
            {"timestamp": int(datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00"))
                              .timestamp() * 1000), "message": json.dumps(e)} for e in EVENTS])
        yield "/runs"


def test_cloudwatch_short_run_id(capsys: pytest.CaptureFixture[str], cw_group: str) -> None:
    flags = ["--log-group", cw_group]
    code, out, err = run(capsys, "tail", *flags, "--run-id", RUN_C[:8])
    assert code == 0, err
    assert [line.rsplit("  ", 1)[1] for line in out.splitlines()] == ["c: fetched", "c: done"]
    assert all(f" {RUN_C[:8]} " in line for line in out.splitlines())

    code, out, err = run(capsys, "tail", *flags, "--run-id", "abcd1234", "--json")
    assert code == 1 and out == ""
    assert err.splitlines() == [
        f"dagster-logship tail: error: run id 'abcd1234' is ambiguous: 2 runs start with it: "
        f"{RUN_A} (job orders), {RUN_B} (job orders); give more of the run id"]

    for given in (RUN_A, RUN_A[:14]):  # the whole id, or enough of it
        code, out, err = run(capsys, "tail", *flags, "--run-id", given, "--json")
        assert code == 0, err
        assert [json.loads(line)["message"] for line in out.splitlines()] == [
            "a: fetched", "a: done"]


def test_cloudwatch_follow_by_short_id_ends_after_the_run(
    capsys: pytest.CaptureFixture[str], cw_group: str,
) -> None:
    code, out, err = run(capsys, "tail", "--log-group", cw_group, "--run-id", RUN_C[:8],
                         "--follow", "--poll-interval", "0.01", "--max-polls", "50")
    assert code == 0, err
    assert out.count("c: fetched") == 1 and "RUN_SUCCESS" in out


def test_cloudwatch_missing_group_and_stream(capsys: pytest.CaptureFixture[str],
                                            cw_group: str) -> None:
    for follow in ([], ["--follow", "--max-polls", "50", "--poll-interval", "0.01"]):
        code, out, err = run(capsys, "tail", "--log-group", "/nope", "--stream", "s", *follow)
        assert code == 1 and out == ""
        assert err.startswith("dagster-logship tail: error: log group '/nope' does not exist "
                              "(region us-east-1)")
    code, _, err = run(capsys, "tail", "--log-group", cw_group, "--stream", "later")
    assert code == 1
    assert "log stream 'later' does not exist in log group '/runs' (region us-east-1)" in err
    # Following, a missing stream of an existing group is waited for: the run creates it.
    code, out, err = run(capsys, "tail", "--log-group", cw_group, "--stream", "later",
                         "--follow", "--max-polls", "2", "--poll-interval", "0.01")
    assert code == 0 and out == "" and err == ""


# -- Cloud Logging (fake server, real client) ------------------------------------------------------


def test_gcp_short_run_id(capsys: pytest.CaptureFixture[str]) -> None:
    with FakeCloudLogging() as server:
        client = Client(project=PROJECT, credentials=AnonymousCredentials(), _use_grpc=False,
                        client_options={"api_endpoint": server.url})
        client.logging_api.write_entries(
            [{"jsonPayload": e, "timestamp": e["timestamp"],
              "labels": {"run_id": e["run_id"], "job_name": e["job_name"]}} for e in EVENTS],
            logger_name=f"projects/{PROJECT}/logs/dagster", resource={"type": "global"})
        flags = ["--project", PROJECT, "--api-endpoint", server.url]

        code, out, err = run(capsys, "tail", *flags, "--run-id", RUN_C[:8])
        assert code == 0, err
        assert [line.rsplit("  ", 1)[1] for line in out.splitlines()] == ["c: fetched", "c: done"]
        asked = server.list_requests()[-1]["body"]["filter"]
        assert asked == (f'logName="projects/{PROJECT}/logs/dagster" AND '
                         f'labels.run_id:"{RUN_C[:8]}"')

        code, _, err = run(capsys, "tail", *flags, "--run-id", "ABCD1234")
        assert code == 0 and "no events found" in err  # the prefix check here is exact
        code, _, err = run(capsys, "tail", *flags, "--run-id", "abcd1234")
        assert code == 1 and f"2 runs start with it: {RUN_A} (job orders), {RUN_B}" in err

        server.clear()
        code, out, err = run(capsys, "tail", *flags, "--run-id", RUN_C[:8], "--follow",
                             "--max-polls", "2", "--poll-interval", "0.01")
        assert code == 0 and out == ""
        assert all(':"ffff0000"' in r["body"]["filter"] for r in server.list_requests())
