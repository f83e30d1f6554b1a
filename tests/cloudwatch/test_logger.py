"""``cloudwatch_logger``: config keys, {env: VAR}, stream templates from the run, the console URL
said once, invalid names failing at init, dagster-aws's docstring example, dagster.yaml."""

import inspect
import logging
import re
import textwrap
from typing import Any

import pytest
from dagster import OpExecutionContext, build_init_logger_context, job, op
from dagster._core.test_utils import instance_for_test

import dagster_logship
from dagster_logship import cloudwatch_logger
from dagster_logship.handlers.cloudwatch import CloudWatchHandler
from dagster_logship.testing import flush_cloudwatch, read_events


@op
def chatty(context: OpExecutionContext) -> None:
    context.log.debug("debug line")
    context.log.info("info line")
    context.log.error("error line")


@job(logger_defs={"cloudwatch": cloudwatch_logger})
def chatty_job() -> None:
    chatty()


def handler_of(logger_: logging.Logger) -> CloudWatchHandler:
    (handler,) = logger_.handlers
    assert isinstance(handler, CloudWatchHandler)
    return handler


def test_logger_outside_a_run(logs: Any) -> None:
    built = cloudwatch_logger(
        build_init_logger_context(
            logger_config={"log_group_name": "/logger/unit", "aws_region": "us-east-1",
                           "flush_interval": 0.05, "log_level": "warning"}
        )
    )
    handler = handler_of(built)
    try:
        assert built.level == logging.WARNING
        assert built.name == "dagster"
        assert handler.log_stream_name == "unknown-job/no-run"
        assert handler.options.flush_interval == 0.05
        built.warning("direct")
        assert handler.flush(10)
        events = read_events("/logger/unit", "unknown-job/no-run", client=logs)
        assert [e["message"] for e in events] == ["direct"]
    finally:
        handler.close()


def test_logger_requires_a_group() -> None:
    with pytest.raises(Exception, match="log_group_name"):
        cloudwatch_logger(None)


def test_run_config_with_env_sources_and_default_stream(
    logs: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CW_GROUP", "/logger/env/group")
    monkeypatch.setenv("CW_REGION", "us-east-1")
    monkeypatch.setenv("CW_SECRET", "env-secret-value-not-shown")
    config = {
        "log_level": "INFO",
        "log_group_name": {"env": "CW_GROUP"},
        "aws_region": {"env": "CW_REGION"},
        "aws_access_key_id": "AKIAENVEXAMPLE",
        "aws_secret_access_key": {"env": "CW_SECRET"},
        "retention_in_days": 7,
        "tags": {"owner": "data"},
        "flush_interval": 0.05,
    }
    result = chatty_job.execute_in_process(
        run_config={"loggers": {"cloudwatch": {"config": config}}}
    )
    assert result.success
    events = read_events("/logger/env/group", f"chatty_job/{result.run_id}", client=logs)
    user = [e["message"] for e in events if e["event_type"] is None]
    assert user == ["info line", "error line"]  # debug is below log_level
    assert all(e["run_id"] == result.run_id for e in events)
    assert {e["level"] for e in events} <= {"INFO", "WARNING", "ERROR", "CRITICAL"}
    (group,) = logs.describe_log_groups(logGroupNamePrefix="/logger/env/group")["logGroups"]
    assert group["retentionInDays"] == 7

    err = capsys.readouterr().err
    announced = [line for line in err.splitlines() if "shipping Dagster logs to CloudWatch" in line]
    assert announced == [
        "dagster-logship: shipping Dagster logs to CloudWatch Logs group '/logger/env/group', "
        f"stream 'chatty_job/{result.run_id}': moto's mock_aws in this process (not AWS)"
    ]
    assert "env-secret-value-not-shown" not in err


def test_announcement_names_the_console_page_outside_moto(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Built outside any mock, with no endpoint: the stream's page in AWS's console (building
    makes no network call, and nothing is logged, so nothing is sent)."""
    built = cloudwatch_logger(
        build_init_logger_context(
            logger_config={"log_group_name": "/logger/console", "log_stream_name": "page",
                           "aws_region": "us-east-1"}
        )
    )
    handler_of(built).close()
    announced = [
        line for line in capsys.readouterr().err.splitlines() if "shipping Dagster logs" in line
    ]
    assert announced == [
        "dagster-logship: shipping Dagster logs to CloudWatch Logs group '/logger/console', "
        "stream 'page': https://us-east-1.console.aws.amazon.com/cloudwatch/home?region="
        "us-east-1#logsV2:log-groups/log-group/$252Flogger$252Fconsole/log-events/page"
    ]


def test_announcement_names_the_endpoint_it_ships_to(
    moto_endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    built = cloudwatch_logger(
        build_init_logger_context(
            logger_config={"log_group_name": "/logger/endpoint", "log_stream_name": "s",
                           "aws_region": "us-east-1", "endpoint_url": moto_endpoint}
        )
    )
    handler_of(built).close()
    assert (
        f"group '/logger/endpoint', stream 's': endpoint {moto_endpoint} (not AWS's own)"
        in capsys.readouterr().err
    )


def test_announcement_goes_to_the_python_logger_when_configured(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    with caplog.at_level(logging.INFO, logger="dagster_logship"):
        built = cloudwatch_logger(
            build_init_logger_context(
                logger_config={"log_group_name": "/logger/announce",
                               "log_stream_name": "announce-{pid}", "aws_region": "us-east-1"}
            )
        )
    handler_of(built).close()
    lines = [r.getMessage() for r in caplog.records if r.name == "dagster_logship"]
    assert len(lines) == 1 and "$252Flogger$252Fannounce" in lines[0]
    assert "shipping Dagster logs" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("key", "value"),
    [("log_group_name", "aws/reserved"), ("log_stream_name", "bad:name"),
     ("log_stream_name", "{nope}"), ("retention_in_days", 8)],
)
def test_invalid_config_fails_the_run_at_init_naming_the_key(
    logs: Any, key: str, value: Any
) -> None:
    config: dict[str, Any] = {"log_group_name": "/logger/invalid", "aws_region": "us-east-1"}
    config[key] = value
    with pytest.raises(Exception) as info:
        chatty_job.execute_in_process(run_config={"loggers": {"cloudwatch": {"config": config}}})
    chain, exc = [], info.value
    seen: BaseException | None = exc
    while seen is not None:
        chain.append(str(seen))
        seen = seen.__cause__ or seen.__context__
    assert any(key in text for text in chain)


def test_dagster_aws_docstring_example_works_with_only_the_import_changed(logs: Any) -> None:
    doc = inspect.getdoc(cloudwatch_logger.logger_fn) or ""
    example = textwrap.dedent(doc.split(".. code-block:: python", 1)[1])
    assert "from dagster_logship import cloudwatch_logger" in example
    assert hasattr(dagster_logship, "cloudwatch_logger")
    # dagster-aws's example, region us-west-1: run it as written (moto stands in for AWS).
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_DEFAULT_REGION", "us-west-1")
        from dagster_logship.testing import mock_cloudwatch

        with mock_cloudwatch("us-west-1") as west:
            exec(compile(example, "<docstring example>", "exec"), {})
            assert flush_cloudwatch(10)
            events = read_events("/dagster-test/test-cloudwatch-logging", "test-logging",
                                 client=west)
    user = [e["message"] for e in events if e["event_type"] is None]
    assert user == ["Hello, Cloudwatch!", "This is an error"]


def test_dagster_yaml_python_logs_handler_config(logs: Any) -> None:
    overrides = {
        "python_logs": {
            "dagster_handler_config": {
                "handlers": {
                    "cloudwatch": {
                        "class": "dagster_logship.handlers.cloudwatch.CloudWatchHandler",
                        "level": "INFO",
                        "log_group_name": "/logger/dagster-yaml",
                        "log_stream_name": "instance-{pid}",
                        "aws_region": "us-east-1",
                        "flush_interval": 0.05,
                    }
                }
            }
        }
    }
    with instance_for_test(overrides=overrides) as instance:

        @job
        def yaml_job() -> None:
            chatty()

        result = yaml_job.execute_in_process(instance=instance)
        assert result.success
        assert flush_cloudwatch(10)
        streams = logs.describe_log_streams(logGroupName="/logger/dagster-yaml")["logStreams"]
        (stream,) = [s["logStreamName"] for s in streams]
        assert re.fullmatch(r"instance-\d+", stream)
        events = read_events("/logger/dagster-yaml", stream, client=logs)
        mine = [e for e in events if e["run_id"] == result.run_id]
        assert [e["message"] for e in mine if e["event_type"] is None] == [
            "info line", "error line"
        ]
