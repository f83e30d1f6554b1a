"""Jobs for the JSON console integration tests, at module level so that step processes of the
multiprocess executor can load them again."""

from dagster import In, Nothing, OpExecutionContext, job, op

from dagster_logship import json_console_logger


def _chatter(context: OpExecutionContext, name: str) -> None:
    context.log.debug(f"{name} debug")
    for i in range(3):
        context.log.info(f"{name} info {i}", extra={"row": i})
    context.log.warning(f"{name} warning")


@op
def first(context: OpExecutionContext) -> int:
    _chatter(context, "first")
    return 1


@op
def second(context: OpExecutionContext, n: int) -> int:
    _chatter(context, "second")
    return n + 1


@op
def third(context: OpExecutionContext, n: int) -> int:
    _chatter(context, "third")
    return n * 2


@op(ins={"a": In(int), "b": In(int)})
def last(context: OpExecutionContext, a: int, b: int) -> None:
    _chatter(context, "last")


@op(ins={"after": In(Nothing)})
def failing(context: OpExecutionContext) -> None:
    context.log.info("about to fail")
    raise ValueError("boom in op")


@job(logger_defs={"json": json_console_logger})
def fan() -> None:
    n = first()
    last(second(n), third(n))


@job(logger_defs={"json": json_console_logger})
def fails() -> None:
    failing(after=first())
