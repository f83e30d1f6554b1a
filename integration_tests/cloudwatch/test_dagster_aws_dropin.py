"""``format: dagster_aws`` and ``fail_fast: true`` against dagster-aws's own (deprecated)
``cloudwatch_logger``: both attached to the same real Dagster job, both shipping to one moto
server process on loopback (dagster-aws's client finds it through
``AWS_ENDPOINT_URL_CLOUDWATCH_LOGS``, since its config has no endpoint key), and their streams
compared event by event."""

import json
import uuid
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from dagster import OpExecutionContext, job, op

from dagster_logship import cloudwatch_logger
from dagster_logship.testing import read_raw_events

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # dagster-aws's logger is deprecated: that is the point
    from dagster_aws.cloudwatch import cloudwatch_logger as dagster_aws_logger

REGION = "us-east-1"

#: Fields of a LogRecord that differ between two records of the same relayed call: each logger
#: gets its own record, made a few microseconds apart. Everything else (Dagster's metadata with
#: its log_timestamp and message id, the message, the caller's file and line, process and
#: thread) is the same value, in the same place.
DIFFER_BETWEEN_RECORDS = frozenset({"created", "msecs", "relativeCreated"})


@op
def talkative(context: OpExecutionContext) -> None:
    context.log.info("Hello, Cloudwatch!")
    context.log.error("This is an error")
    context.log.info("merged %s and %d", "args", 42)
    context.log.warning({"a dict": [1, 2.5, None, True]})
    context.log.info('quotes " and \\ backslash, tab\t, newline\n, unicode é ✓ 🚀')
    context.log.critical("x" * 5000)
    context.log.debug("below the loggers' level: in neither stream")


@job(
    logger_defs={"dagster_aws": dagster_aws_logger, "logship": cloudwatch_logger},
    tags={"team": "data", "ünïcode": "ok"},
)
def both_loggers_job() -> None:
    talkative()


@op
def quiet(context: OpExecutionContext) -> None:
    context.log.info("quiet line")


@job(logger_defs={"dagster_aws": dagster_aws_logger, "logship": cloudwatch_logger})
def one_logger_job() -> None:
    quiet()


@pytest.fixture
def logs(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", moto_endpoint)
    yield boto3.session.Session().client(
        "logs", region_name=REGION, endpoint_url=moto_endpoint,
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )


def test_format_dagster_aws_ships_what_dagster_aws_ships(logs: Any, moto_endpoint: str) -> None:
    group = f"/dropin/{uuid.uuid4().hex[:8]}"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="dagster-aws")  # it needs both
    result = both_loggers_job.execute_in_process(run_config={"loggers": {
        "dagster_aws": {"config": {
            "log_group_name": group, "log_stream_name": "dagster-aws", "aws_region": REGION,
        }},
        "logship": {"config": {
            "log_group_name": group, "log_stream_name": "logship", "aws_region": REGION,
            "endpoint_url": moto_endpoint, "format": "dagster_aws", "flush_interval": 0.05,
        }},
    }})
    assert result.success

    theirs = read_raw_events(group, "dagster-aws", client=logs)
    ours = read_raw_events(group, "logship", client=logs)
    assert len(theirs) == 6
    assert len(ours) == len(theirs)
    for their_event, our_event in zip(theirs, ours, strict=True):
        # The event timestamp: dagster-aws's rule, from dagster_meta["log_timestamp"].
        assert our_event["timestamp"] == their_event["timestamp"]
        their_record = json.loads(their_event["message"])
        our_record = json.loads(our_event["message"])
        assert list(our_record) == list(their_record)  # same keys, same order
        differing = {key for key in their_record if our_record[key] != their_record[key]}
        assert differing <= DIFFER_BETWEEN_RECORDS, differing
        # The same text once the differing values are put aside: spacing, escaping, nesting.
        same_text = our_event["message"]
        for key in DIFFER_BETWEEN_RECORDS:
            mine, theirs_value = json.dumps(our_record[key]), json.dumps(their_record[key])
            same_text = same_text.replace(f'"{key}": {mine}', f'"{key}": {theirs_value}')
        assert same_text == their_event["message"]
    messages = [json.loads(e["message"])["dagster_meta"]["orig_message"] for e in ours]
    assert messages[:3] == ["Hello, Cloudwatch!", "This is an error", "merged args and 42"]
    assert json.loads(ours[0]["message"])["dagster_meta"]["job_tags"]["ünïcode"] == "ok"


def test_fail_fast_missing_group_fails_the_run_at_init_like_dagster_aws(logs: Any) -> None:
    missing = f"foo-{uuid.uuid4().hex[:8]}"
    config = {"log_group_name": missing, "log_stream_name": "bar", "aws_region": REGION}
    # dagster-aws's own test, as it is written for its logger...
    with pytest.raises(Exception, match=f"Could not find log group with name {missing}"):
        one_logger_job.execute_in_process(
            run_config={"loggers": {"dagster_aws": {"config": config}}}
        )
    # ...holds for ours with fail_fast: true, and says where and what to do.
    with pytest.raises(Exception, match=f"Could not find log group with name {missing}") as info:
        one_logger_job.execute_in_process(
            run_config={"loggers": {"logship": {"config": {**config, "fail_fast": True}}}}
        )
    text = str(info.value)
    assert f"in region {REGION}" in text
    assert "aws logs create-log-group" in text and "fail_fast: false" in text
    assert logs.describe_log_groups(logGroupNamePrefix=missing)["logGroups"] == []


def test_fail_fast_missing_stream_when_we_may_not_create_it(logs: Any) -> None:
    group = f"/dropin/{uuid.uuid4().hex[:8]}"
    logs.create_log_group(logGroupName=group)
    config = {"log_group_name": group, "log_stream_name": "bar", "aws_region": REGION}
    with pytest.raises(Exception, match="Could not find log stream with name bar"):
        one_logger_job.execute_in_process(
            run_config={"loggers": {"dagster_aws": {"config": config}}}
        )
    # Another stream named with the same prefix: dagster-aws's check looks at the first stream
    # listed only, and then lists again forever. Ours reads every page for the exact name.
    logs.create_log_stream(logGroupName=group, logStreamName="bar-but-longer")
    with pytest.raises(Exception, match="Could not find log stream with name bar") as info:
        one_logger_job.execute_in_process(run_config={"loggers": {"logship": {"config": {
            **config, "fail_fast": True, "create_log_stream": False,
        }}}})
    assert "create_log_stream: true" in str(info.value)
    # With create_log_stream: true (the default) a missing stream is created on the first send.
    result = one_logger_job.execute_in_process(run_config={"loggers": {"logship": {"config": {
        **config, "fail_fast": True, "flush_interval": 0.05,
    }}}})
    assert result.success
    shipped = read_raw_events(group, "bar", client=logs)
    assert [json.loads(e["message"])["message"] for e in shipped] == ["quiet line"]
