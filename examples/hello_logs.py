"""Environment-specific logging using jobs: the pattern of Dagster's logging docs, with our loggers.

One graph, one job per environment. ``local_logs`` keeps Dagster's colored console for the local
development loop; ``prod_logs`` ships to CloudWatch Logs, ``prod_logs_gcp`` to Google Cloud
Logging, ``prod_logs_json`` prints one JSON object per line (``format: gcp``) for the agents of
GKE and Cloud Run. Which destination, and at which level, is run config YAML (run_config/):

    cd examples
    dagster job execute -f hello_logs.py -j local_logs -c run_config/local_logs.yaml
    dagster job execute -f hello_logs.py -j prod_logs -c run_config/prod_logs.yaml
    dagster dev -f hello_logs.py     # then pick a job and paste the YAML in the launchpad

Dagster starts a logger only when its key is named under ``loggers:`` in the run config, and
silently uses its console otherwise. So each production job names its logger in its default run
config (``with_active_loggers``, the production YAML's values): a launch without any ``-c``
file, or from the launchpad with ``{}``, still ships; a launch with a YAML file replaces the
default. ``logger_check_sensor`` says, in each run's own event log, where its logs went (or that
they went nowhere); it runs in the daemon, which ``dagster dev`` starts.
"""

from dagster import Definitions, OpExecutionContext, colored_console_logger, graph, op

from dagster_logship import (
    cloudwatch_logger,
    gcp_logger,
    json_console_logger,
    logger_check_sensor,
    with_active_loggers,
)


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
prod_logs = with_active_loggers(
    hello_logs.to_job(name="prod_logs", logger_defs={"cloudwatch": cloudwatch_logger}),
    # As in run_config/prod_logs.yaml, the docs' example.
    {"cloudwatch": {
        "log_level": "ERROR",
        "log_group_name": "/my/cool/cloudwatch/log/group",
        "log_stream_name": "very_good_log_stream",
        "aws_region": "us-west-2",
    }},
)
# gcp_logger's defaults: the project of the environment's credentials, log "dagster".
prod_logs_gcp = with_active_loggers(
    hello_logs.to_job(name="prod_logs_gcp", logger_defs={"gcp": gcp_logger})
)
prod_logs_json = with_active_loggers(
    hello_logs.to_job(name="prod_logs_json", logger_defs={"json": json_console_logger}),
    {"json": {"format": "gcp"}},
)

defs = Definitions(
    jobs=[local_logs, prod_logs, prod_logs_gcp, prod_logs_json],
    sensors=[logger_check_sensor()],  # says in each run's event log where its logs went
)
