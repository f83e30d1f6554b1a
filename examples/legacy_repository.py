"""Default loggers on a ``@repository`` (``default_logger_defs``), as in Dagster's legacy docs.

``default_logger_defs`` adds ``json_logger`` to every job of the repository that has no loggers
of its own, and to asset materializations. As with ``Definitions(loggers=...)``, the logger runs
only in runs whose config names it: ``the_job`` carries that config itself
(``loggers_run_config``), so it prints JSON lines (``format: gcp``) whenever it runs.

    dagster job execute -f examples/legacy_repository.py -j the_job
"""

from dagster import AssetExecutionContext, asset, define_asset_job, repository

from dagster_logship import json_console_logger
from dagster_logship.selection import loggers_run_config


@asset
def some_asset(context: AssetExecutionContext) -> int:
    context.log.info("materializing some_asset")
    return 1


the_job = define_asset_job(
    "the_job",
    selection="*",
    config=loggers_run_config({"json_logger": {"format": "gcp", "log_level": "INFO"}}),
)


@repository(default_logger_defs={"json_logger": json_console_logger})
def the_repo() -> list[object]:
    # json_logger is used when the_job runs (its config names it); see code_location.py for why
    # a materialization launched outside an asset job needs more than this.
    return [the_job, some_asset]
