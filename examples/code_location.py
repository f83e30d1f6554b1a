"""Default loggers for every job of a code location, active without naming them at each launch.

``Definitions(loggers=...)`` attaches ``cloudwatch_logger`` to every job that has no loggers of
its own (the op job, the asset job, asset materializations). Attaching is not enough: Dagster
starts a logger only when the run config names it under ``loggers:``. ``with_active_loggers``
gives each job in ``jobs=`` a default run config that does, so every launch (launchpad, schedule,
sensor, ``dagster job execute``) ships to CloudWatch, and adds a sensor that writes a warning
into any run that still starts without it.

Materializations launched outside an asset job (the UI's "Materialize" button, declarative
automation) run Dagster's implicit asset job, which cannot carry a default run config: launch
them through ``all_assets`` (or ``daily_assets``), or configure the handler in dagster.yaml
(see python_logs.py).

    DAGSTER_LOG_GROUP=/prod/dagster AWS_REGION=us-west-2 \
        dagster job execute -f examples/code_location.py -j all_assets
    dagster dev -f examples/code_location.py
"""

from dagster import (
    AssetExecutionContext,
    Definitions,
    OpExecutionContext,
    ScheduleDefinition,
    asset,
    define_asset_job,
    job,
    op,
)

from dagster_logship import cloudwatch_logger
from dagster_logship.selection import with_active_loggers


@asset
def raw_orders(context: AssetExecutionContext) -> list[int]:
    orders = [120, 75, 310, 42]
    context.log.info(f"loaded {len(orders)} orders")
    return orders


@asset
def order_total(context: AssetExecutionContext, raw_orders: list[int]) -> int:
    total = sum(raw_orders)
    context.log.info(f"order total {total}")
    return total


all_assets = define_asset_job("all_assets", selection="*")


@op
def vacuum(context: OpExecutionContext) -> None:
    context.log.warning("vacuumed 2 tables")


@job
def maintenance() -> None:
    vacuum()


defs = with_active_loggers(
    Definitions(
        assets=[raw_orders, order_total],
        jobs=[all_assets, maintenance],
        schedules=[ScheduleDefinition(job=all_assets, cron_schedule="0 6 * * *")],
        loggers={"cloudwatch": cloudwatch_logger},
    ),
    {
        "cloudwatch": {
            "log_group_name": {"env": "DAGSTER_LOG_GROUP"},
            "aws_region": {"env": "AWS_REGION"},
            "log_level": "INFO",
        }
    },
)
