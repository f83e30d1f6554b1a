"""``cloudwatch_logger``: Dagster logs to CloudWatch Logs, batched and never blocking the op.

Its config keys are a superset of dagster-aws's ``cloudwatch_logger`` (log_level, name,
log_group_name, log_stream_name, aws_region, aws_access_key_id, aws_secret_access_key), so YAML
written for that logger keeps working with only the import changed.
"""

from __future__ import annotations

import logging
from typing import Any

from dagster import Field, InitLoggerContext, Map, Noneable, StringSource, logger

from ..handlers.cloudwatch import CloudWatchHandler, fill_stream_template
from ._config import build_logger, common_schema, shipping_kwargs, shipping_schema
from .announce import announce

__all__ = ["DEFAULT_LOGGER_STREAM", "cloudwatch_logger"]

#: One run, one stream: every process of a run (run worker, step subprocesses, pods) writes to
#: it, which CloudWatch allows since sequence tokens were dropped.
DEFAULT_LOGGER_STREAM = "{job_name}/{run_id}"

#: What Dagster's build_init_logger_context() reports as the run id outside a run.
_PLACEHOLDER_RUN_IDS = frozenset({"__EPHEMERAL_RUN_ID"})



def _opt_str(description: str) -> Field:
    return Field(Noneable(StringSource), is_required=False, default_value=None,
                 description=description)


def _announce(handler: CloudWatchHandler) -> None:
    """Say once per process and stream where the records really go: moto's in-process mock,
    another endpoint, or the stream's page in AWS's console."""
    if handler.under_moto_mock:
        where_read = "moto's mock_aws in this process (not AWS)"
    elif handler.endpoint_url:
        where_read = f"endpoint {handler.endpoint_url} (not AWS's own)"
    else:
        where_read = handler.console_url
    announce(
        f"cloudwatch {handler.log_group_name}/{handler.log_stream_name}",
        f"shipping Dagster logs to CloudWatch Logs group {handler.log_group_name!r}, stream "
        f"{handler.log_stream_name!r}: {where_read}",
    )


@logger(
    config_schema={
        **common_schema(),
        "log_group_name": Field(
            StringSource,
            description="Log group (1-512 of A-Za-z0-9._/#-, not starting with aws/); created "
            "when missing unless create_log_group is false.",
        ),
        "log_stream_name": Field(
            StringSource,
            is_required=False,
            default_value=DEFAULT_LOGGER_STREAM,
            description="Literal name or template of {job_name}, {run_id}, {pid}, {hostname}, "
            "{date}. The default puts one run in one stream.",
        ),
        "aws_region": _opt_str("Region; default: boto3's chain (AWS_DEFAULT_REGION, profile)."),
        "aws_access_key_id": _opt_str("Access key id; default: boto3's credential chain."),
        "aws_secret_access_key": _opt_str("Secret key; prefer {env: VAR} over a literal."),
        "aws_session_token": _opt_str("Session token of temporary credentials."),
        "aws_profile": _opt_str("Named profile of ~/.aws/config."),
        "endpoint_url": _opt_str("Another endpoint (VPC endpoint, moto, localstack)."),
        "create_log_group": Field(bool, is_required=False, default_value=True,
                                  description="Create the log group when it is missing."),
        "create_log_stream": Field(bool, is_required=False, default_value=True,
                                   description="Create the log stream when it is missing."),
        "retention_in_days": Field(
            Noneable(int), is_required=False, default_value=None,
            description="Retention set when we create the group (1, 3, 5, 7, 14, 30, 60, 90, "
            "120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653).",
        ),
        "tags": Field(
            Noneable(Map(str, StringSource)),  # type: ignore[no-untyped-call]
            is_required=False,
            default_value=None,
            description="Tags set when we create the group.",
        ),
        "format": Field(
            StringSource, is_required=False, default_value="json",
            description="json (our event schema) or dagster_aws (each event's message is the "
            "JSON dagster-aws's cloudwatch_logger shipped: the record's attributes).",
        ),
        "fail_fast": Field(
            bool, is_required=False, default_value=False,
            description="Check at init (DescribeLogGroups, and DescribeLogStreams when "
            "create_log_stream is false) that the group exists and the region and credentials "
            "work; fail the run if not. Off: building the logger makes no network call.",
        ),
        **shipping_schema(),
    },
    description="Dagster logs to AWS CloudWatch Logs, batched, retried, never blocking the op.",
)
def cloudwatch_logger(init_context: InitLoggerContext) -> logging.Logger:
    """Ships Dagster logs to AWS CloudWatch Logs.

    Example:

        .. code-block:: python

            from dagster import job, op
            from dagster_logship import cloudwatch_logger

            @op
            def hello_op(context):
                context.log.info('Hello, Cloudwatch!')
                context.log.error('This is an error')

            @job(logger_defs={'cloudwatch': cloudwatch_logger})
            def hello_cloudwatch():
                hello_op()

            hello_cloudwatch.execute_in_process(
                run_config={
                    'loggers': {
                        'cloudwatch': {
                            'config': {
                                'log_group_name': '/dagster-test/test-cloudwatch-logging',
                                'log_stream_name': 'test-logging',
                                'aws_region': 'us-west-1'
                            }
                        }
                    }
                },
            )
    """
    config: dict[str, Any] = init_context.logger_config
    job_def = init_context.job_def
    run_id = init_context.run_id
    run_values = {
        "job_name": (job_def.name if job_def is not None else None) or "unknown-job",
        "run_id": run_id if run_id and run_id not in _PLACEHOLDER_RUN_IDS else "no-run",
    }
    stream = fill_stream_template(config["log_stream_name"], run_values, final=False)
    handler = CloudWatchHandler(
        log_group_name=config["log_group_name"],
        log_stream_name=stream,
        aws_region=config.get("aws_region"),
        aws_access_key_id=config.get("aws_access_key_id"),
        aws_secret_access_key=config.get("aws_secret_access_key"),
        aws_session_token=config.get("aws_session_token"),
        aws_profile=config.get("aws_profile"),
        endpoint_url=config.get("endpoint_url"),
        create_log_group=config.get("create_log_group", True),
        create_log_stream=config.get("create_log_stream", True),
        retention_in_days=config.get("retention_in_days"),
        tags=config.get("tags"),
        format=config.get("format", "json"),
        fail_fast=config.get("fail_fast", False),
        **shipping_kwargs(config),
    )
    _announce(handler)
    # format: dagster_aws needs each record: the handler takes no snapshots, so every call takes
    # logging's own path and the record names Dagster's call as its caller (see _relay.py).
    return build_logger(config["name"], config["log_level"], handler)
