"""Logs of ordinary Python loggers (``logging.getLogger("my_lib")``) shipped by dagster.yaml.

Dagster captures the Python loggers listed in ``python_logs.managed_python_loggers`` during a
run and hands their records, with the run's metadata, to the handlers of
``python_logs.dagster_handler_config`` (and to the job's loggers). With ``CloudWatchHandler``
configured there (examples/dagster.yaml), every run of every job of the instance ships, with no
``loggers:`` run config at all: the handler is built by the instance, not selected per run.

    DAGSTER_HOME=$PWD/examples dagster job execute -f examples/python_logs.py -j nightly
"""

import logging

from dagster import Definitions, OpExecutionContext, job, op

library_log = logging.getLogger("my_lib")


def clean(rows: list[int]) -> list[int]:
    """Library code that knows nothing about Dagster."""
    kept = [row for row in rows if row >= 0]
    library_log.warning("my_lib dropped %d negative rows", len(rows) - len(kept))
    return kept


@op
def nightly_clean(context: OpExecutionContext) -> None:
    rows = clean([3, -1, 4, -1, 5])
    context.log.info(f"kept {len(rows)} rows")


@job
def nightly() -> None:
    nightly_clean()


defs = Definitions(jobs=[nightly])
