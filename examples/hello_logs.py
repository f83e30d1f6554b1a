"""Environment-specific logging using jobs: the pattern of Dagster's logging docs, with our loggers.

One graph, one job per environment. ``local_logs`` keeps Dagster's colored console for the local
development loop; ``prod_logs`` ships to CloudWatch Logs, ``prod_logs_gcp`` to Google Cloud
Logging, ``prod_logs_json`` prints one JSON object per line (``format: gcp``) for the agents of
GKE and Cloud Run. Which destination, and at which level, is run config YAML (run_config/):

    cd examples
    dagster job execute -f hello_logs.py -j local_logs -c run_config/local_logs.yaml
    dagster job execute -f hello_logs.py -j prod_logs -c run_config/prod_logs.yaml
    dagster dev -f hello_logs.py     # then pick a job and paste the YAML in the launchpad

A logger only runs when its key is named under ``loggers:`` in the run config: launched without
one of these YAML files, ``prod_logs`` would log to the console only. See code_location.py for
jobs that carry their loggers' config themselves.
"""

from dagster import Definitions, OpExecutionContext, colored_console_logger, graph, op

from dagster_logship import cloudwatch_logger, json_console_logger
from dagster_logship.loggers.gcp import gcp_logger


@op
def log_op(context: OpExecutionContext) -> None:
    context.log.info("Hello, world!")


@op
def check_op(context: OpExecutionContext) -> None:
    # What `log_level: ERROR` keeps in production.
    context.log.error("Something to page about: 3 rows failed validation")


@graph
def hello_logs() -> None:
    log_op()
    check_op()


local_logs = hello_logs.to_job(name="local_logs", logger_defs={"console": colored_console_logger})
prod_logs = hello_logs.to_job(name="prod_logs", logger_defs={"cloudwatch": cloudwatch_logger})
prod_logs_gcp = hello_logs.to_job(name="prod_logs_gcp", logger_defs={"gcp": gcp_logger})
prod_logs_json = hello_logs.to_job(name="prod_logs_json", logger_defs={"json": json_console_logger})

defs = Definitions(jobs=[local_logs, prod_logs, prod_logs_gcp, prod_logs_json])
