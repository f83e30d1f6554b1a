"""Jobs for the CloudWatch integration tests, at module level so that step subprocesses of the
multiprocess executor can load them again (``reconstructable``)."""

from dagster import In, Nothing, OpExecutionContext, job, op

from dagster_logship import cloudwatch_logger

RECORDS_PER_OP = 5


def _chatter(context: OpExecutionContext, name: str) -> None:
    for i in range(RECORDS_PER_OP):
        context.log.debug(f"{name} debug {i}")
        context.log.info(f"{name} info {i}")
    context.log.warning(f"{name} warning")
    context.log.error(f"{name} error: something to page about")


@op
def extract(context: OpExecutionContext) -> int:
    _chatter(context, "extract")
    return 3


@op
def transform_a(context: OpExecutionContext, n: int) -> int:
    _chatter(context, "transform_a")
    return n * 2


@op
def transform_b(context: OpExecutionContext, n: int) -> int:
    _chatter(context, "transform_b")
    context.log.info("unicode é€😀 and a long line " + "x" * 5000)
    return n + 1


@op(ins={"a": In(int), "b": In(int)})
def load(context: OpExecutionContext, a: int, b: int) -> None:
    _chatter(context, "load")


@op(ins={"after": In(Nothing)})
def report(context: OpExecutionContext) -> None:
    _chatter(context, "report")


@job(logger_defs={"cloudwatch": cloudwatch_logger})
def etl() -> None:
    n = extract()
    report(after=load(transform_a(n), transform_b(n)))
