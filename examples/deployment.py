"""One code location, the destination chosen by deployment: an environment variable, no code change.

``DAGSTER_DEPLOYMENT`` picks the loggers of every job:

- ``local`` (default): Dagster's colored console;
- ``aws``: CloudWatch Logs, group ``$DAGSTER_LOG_GROUP`` (default ``/dagster/prod``), region
  from boto3's chain (``AWS_DEFAULT_REGION``, the profile, the instance);
- ``gcp``: Google Cloud Logging, project ``$GOOGLE_CLOUD_PROJECT``;
- ``gke``: JSON lines on stdout in Google's structured format, for GKE and Cloud Run agents.

The chosen loggers are named in each job's default run config (``with_active_loggers``), so
``dagster job execute -f examples/deployment.py -j etl`` ships without any ``-c`` file, and the
same YAML-free launch logs to the console on a laptop. Values given as ``{"env": VAR}`` are read
by each process when the run starts, not when the code is loaded.
"""

import os
from typing import Any

from dagster import (
    AssetExecutionContext,
    Definitions,
    LoggerDefinition,
    OpExecutionContext,
    asset,
    colored_console_logger,
    define_asset_job,
    job,
    op,
)

from dagster_logship import cloudwatch_logger, json_console_logger
from dagster_logship.loggers.gcp import gcp_logger
from dagster_logship.selection import with_active_loggers

DEPLOYMENT = os.environ.get("DAGSTER_DEPLOYMENT", "local")


def _loggers(deployment: str) -> tuple[dict[str, LoggerDefinition], dict[str, Any]]:
    """(logger definitions, their config) for a deployment."""
    if deployment == "aws":
        group = os.environ.get("DAGSTER_LOG_GROUP", "/dagster/prod")
        return {"cloudwatch": cloudwatch_logger}, {"cloudwatch": {"log_group_name": group}}
    if deployment == "gcp":
        config: dict[str, Any] = {"project": {"env": "GOOGLE_CLOUD_PROJECT"}}
        if os.environ.get("GCP_LOGGING_API_ENDPOINT"):  # a local fake server in tests
            config["api_endpoint"] = {"env": "GCP_LOGGING_API_ENDPOINT"}
        return {"gcp": gcp_logger}, {"gcp": config}
    if deployment == "gke":
        return {"json": json_console_logger}, {"json": {"format": "gcp"}}
    if deployment == "local":
        return {"console": colored_console_logger}, {"console": {"log_level": "DEBUG"}}
    raise ValueError(f"DAGSTER_DEPLOYMENT: got {deployment!r}; use local, aws, gcp or gke")


@op
def extract(context: OpExecutionContext) -> int:
    context.log.info(f"extracting on deployment {DEPLOYMENT}")
    return 3


@op
def load(context: OpExecutionContext, rows: int) -> None:
    context.log.info(f"loaded {rows} rows")


@job
def etl() -> None:
    load(extract())


@asset
def daily_report(context: AssetExecutionContext) -> str:
    context.log.info("daily report written")
    return "ok"


report_job = define_asset_job("report_job", selection=[daily_report])

logger_defs, logger_config = _loggers(DEPLOYMENT)
defs = with_active_loggers(
    Definitions(assets=[daily_report], jobs=[etl, report_job], loggers=logger_defs),
    logger_config,
)
