"""Jobs for the fault-injection suite, at module level so that step processes of the
multiprocess executor can load them again (``ReconstructableJob.for_file``).

Ops that end a process note it for the test: ``$LOGSHIP_FAULTS_PIDS/<pid>.pid`` holds
``<pid> <time.time()>`` written as the op's last act (see ``faults_support.ExitWatch``).
"""


import gc
import logging
import logging.config
import os
import threading
import time
from pathlib import Path

from dagster import OpExecutionContext, job, op

from dagster_logship import cloudwatch_logger, gcp_logger, json_console_logger
from dagster_logship.shipping import ShippingHandler, flush_all

RECORDS_PER_OP = 40

LOGGERS = {"cloudwatch": cloudwatch_logger, "gcp": gcp_logger, "json": json_console_logger}


def _note_end() -> None:
    directory = os.environ.get("LOGSHIP_FAULTS_PIDS")
    if directory:
        path = Path(directory) / f"{os.getpid()}.pid"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(f"{os.getpid()} {time.time()}")
        tmp.rename(path)


def _chatter(context: OpExecutionContext, name: str, n: int = RECORDS_PER_OP) -> None:
    for i in range(n):
        context.log.info(f"{name} record {i}")
    context.log.warning(f"{name} warning")


# -- the run that ships to a backend that is down -------------------------------------------------


@op
def extract(context: OpExecutionContext) -> None:
    _chatter(context, "extract")
    _note_end()


@op
def transform(context: OpExecutionContext) -> None:
    _chatter(context, "transform")
    _note_end()


@op
def audit(context: OpExecutionContext) -> None:
    _chatter(context, "audit")
    _note_end()


@job(logger_defs=LOGGERS)
def fanout() -> None:
    """Three step processes at once."""
    extract()
    transform()
    audit()


# -- hosts that close handlers while they are in use ---------------------------------------------


@op
def plain(context: OpExecutionContext) -> None:
    _chatter(context, "plain", 10)


@op
def shutdown_logging(context: OpExecutionContext) -> None:
    context.log.info("shutdown_logging before")
    logging.shutdown()  # flushes and closes every handler of the process, ours included
    for i in range(10):
        context.log.info(f"shutdown_logging after {i}")


@op
def dict_config(context: OpExecutionContext) -> None:
    context.log.info("dict_config before")
    # Like any host reconfiguring logging: every handler of the process is closed.
    logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})
    for i in range(10):
        context.log.info(f"dict_config after {i}")


@op
def close_handlers(context: OpExecutionContext) -> None:
    """Closes our handlers directly, from another thread, while this one keeps logging."""
    context.log.info("close_handlers before")
    # (Not through logging._handlerList: Dagster's own dictConfig emptied it when it built
    # the log manager. Our handlers are alive in the run's loggers.)
    ours = [o for o in gc.get_objects() if isinstance(o, ShippingHandler)]
    assert ours, "no shipping handler in this process"
    closer = threading.Thread(target=lambda: [h.close() for h in ours])
    closer.start()
    for i in range(30):
        context.log.info(f"close_handlers after {i}")
    closer.join(30)
    for h in ours:
        h.close()  # and twice
    context.log.info("close_handlers last")


@job(logger_defs=LOGGERS)
def lifecycle() -> None:
    """Four step processes, each ending its own way."""
    plain()
    shutdown_logging()
    dict_config()
    close_handlers()


# -- a step process that ends with os._exit ------------------------------------------------------


@op
def hard_exit(context: OpExecutionContext) -> None:
    for i in range(10):
        context.log.info(f"delivered before os._exit {i}")
    assert flush_all(30)  # what a careful op does before os._exit: these are delivered
    for i in range(10):
        context.log.info(f"queued at os._exit {i}")
    _note_end()
    os._exit(0)  # the point of the test


@job(logger_defs=LOGGERS)
def exits() -> None:
    hard_exit()


# -- a run terminated while a step is running ------------------------------------------------------


@op
def waits(context: OpExecutionContext) -> None:
    for i in range(25):
        context.log.info(f"waits record {i}")
    ready = os.environ.get("LOGSHIP_FAULTS_READY")
    if ready:
        Path(ready).write_text(str(os.getpid()))
    # Blocks until Dagster interrupts the step (DagsterExecutionInterruptedError).
    threading.Event().wait(120)
    context.log.info("waits was never interrupted")


@job(logger_defs=LOGGERS)
def terminated() -> None:
    waits()
