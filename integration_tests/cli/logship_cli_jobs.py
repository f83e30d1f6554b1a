"""A job whose logs the command tests read back: module level, so step processes can load it."""

from dagster import OpExecutionContext, job, op

from dagster_logship import cloudwatch_logger, json_console_logger
from dagster_logship.loggers.gcp import gcp_logger


@op
def fetch(context: OpExecutionContext) -> int:
    context.log.info("fetched 4 orders")
    return 4


@op
def publish(context: OpExecutionContext, n: int) -> None:
    context.log.warning(f"published {n} orders\nsecond line of the message")
    try:
        raise ValueError("bad row 7")
    except ValueError:
        context.log.exception("a row failed")


@job(logger_defs={"cloudwatch": cloudwatch_logger, "gcp": gcp_logger,
                  "json": json_console_logger})
def orders() -> None:
    publish(fetch())
