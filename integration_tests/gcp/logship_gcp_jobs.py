"""Jobs for the Cloud Logging integration tests, at module level so that Dagster's multiprocess
executor can rebuild them in each step process (``reconstructable``)."""

import logging

from dagster import Definitions, OpExecutionContext, job, op

from dagster_logship.loggers.gcp import gcp_logger

#: A message larger than one Cloud Logging entry: it arrives as ordered parts.
BIG_MESSAGE = "".join(f"{i:06d};" for i in range(50_000))  # 350 KB


@op
def extract(context: OpExecutionContext) -> list[int]:
    for i in range(10):
        context.log.info(f"extract batch {i}")
    context.log.debug("extract details")
    return list(range(10))


@op
def transform(context: OpExecutionContext, rows: list[int]) -> list[int]:
    context.log.warning(f"transform saw {len(rows)} rows")
    logging.getLogger("untracked").warning("plain python logging: not captured, not shipped")
    return [r * 2 for r in rows]


@op
def audit(context: OpExecutionContext, rows: list[int]) -> None:
    context.log.error("audit found nothing wrong, loudly")
    context.log.info(BIG_MESSAGE)


@op
def load(context: OpExecutionContext, rows: list[int]) -> None:
    for i in range(5):
        context.log.info(f"load chunk {i}", extra={"chunk": i})


@job(logger_defs={"gcp": gcp_logger})
def gcp_etl() -> None:
    rows = extract()
    audit(rows)
    load(transform(rows))


defs = Definitions(jobs=[gcp_etl], loggers={"gcp": gcp_logger})
