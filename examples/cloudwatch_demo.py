"""Dev logs on the console, prod logs in CloudWatch: one graph, two jobs, chosen by run config.

Run it:  python examples/cloudwatch_demo.py        (prod variant against an embedded moto)
         python examples/cloudwatch_demo.py dev    (dev variant: Dagster's colored console)

The prod variant starts moto as a local server process (no AWS account, nothing leaves the
machine), runs the job with the YAML below, then reads back what arrived in CloudWatch Logs.
The YAML is what you would put in production, minus ``endpoint_url``.
"""

import os
import sys
from collections import Counter
from datetime import datetime, timezone
from typing import Any

import yaml
from dagster import Definitions, OpExecutionContext, colored_console_logger, graph, op

from dagster_logship import cloudwatch_logger
from dagster_logship.testing import TEST_CREDENTIALS, moto_server, read_raw_events

RUN_CONFIG_YAML = """
loggers:
  cloudwatch:
    config:
      log_level: DEBUG
      log_group_name: /dagster/demo
      log_stream_name: "{job_name}/{run_id}"
      aws_region: us-east-1
      endpoint_url:
        env: DEMO_CLOUDWATCH_ENDPOINT
      retention_in_days: 14
      tags:
        app: dagster-logship-demo
"""


@op
def fetch_orders(context: OpExecutionContext) -> list[int]:
    orders = [120, 75, 310, 42]
    context.log.info(f"fetched {len(orders)} orders")
    return orders


@op
def score_orders(context: OpExecutionContext, orders: list[int]) -> int:
    large = [amount for amount in orders if amount > 100]
    if len(large) > 1:
        context.log.warning(f"{len(large)} large orders need a review")
    context.log.debug(f"scored {len(orders)} orders")
    return sum(orders)


@op
def publish_total(context: OpExecutionContext, total: int) -> None:
    context.log.info(f"published total {total}", extra={"total": total})


@graph
def orders_pipeline() -> None:
    publish_total(score_orders(fetch_orders()))


# Development: Dagster's colored console. Production: CloudWatch Logs, selected by run config;
# the YAML is also the prod job's default run config, so a launch without one still ships (to
# DEMO_CLOUDWATCH_ENDPOINT: a launch where it is unset fails, naming it).
orders_dev = orders_pipeline.to_job(name="orders_dev",
                                    logger_defs={"console": colored_console_logger})
orders_prod = orders_pipeline.to_job(
    name="orders_prod",
    logger_defs={"cloudwatch": cloudwatch_logger},
    config=yaml.safe_load(RUN_CONFIG_YAML),
)

# `dagster dev -f examples/cloudwatch_demo.py` loads both jobs from here.
defs = Definitions(jobs=[orders_dev, orders_prod])


def _table(events: list[dict[str, Any]]) -> str:
    import json

    header = ("time", "level", "step_key", "event_type", "message")
    rows = []
    for raw in events:
        try:
            event = json.loads(raw["message"])
        except ValueError:
            event = {"message": raw["message"]}
        when = datetime.fromtimestamp(raw["timestamp"] / 1000, tz=timezone.utc)
        message = str(event.get("message") or "").replace("\n", " ")
        rows.append((
            when.strftime("%H:%M:%S.%f")[:-3],
            str(event.get("level") or ""),
            str(event.get("step_key") or "-"),
            str(event.get("event_type") or "(user log)"),
            message if len(message) <= 70 else message[:67] + "...",
        ))
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
             for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)


def run_prod() -> dict[str, Any]:
    """Run the prod job against an embedded moto server and print what arrived."""
    saved = {key: os.environ.get(key) for key in (*TEST_CREDENTIALS, "DEMO_CLOUDWATCH_ENDPOINT")}
    os.environ.update(TEST_CREDENTIALS)  # dummy credentials: moto only
    try:
        with moto_server() as endpoint:
            os.environ["DEMO_CLOUDWATCH_ENDPOINT"] = endpoint
            run_config = yaml.safe_load(RUN_CONFIG_YAML)
            result = orders_prod.execute_in_process(run_config=run_config)
            stream = f"orders_prod/{result.run_id}"
            # read_raw_events first waits until this process's CloudWatch handlers delivered.
            events = read_raw_events("/dagster/demo", stream, endpoint_url=endpoint)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    print(f"\nCloudWatch Logs /dagster/demo / {stream} ({len(events)} events):\n")
    print(_table(events))
    levels = Counter(_field(e, "level") for e in events)
    user = sum(1 for e in events if _field(e, "event_type") is None)
    print(
        f"\n{len(events)} events: {user} user records, {len(events) - user} Dagster events; "
        + ", ".join(f"{level} {n}" for level, n in sorted(levels.items()))
    )
    return {"success": result.success, "run_id": result.run_id, "stream": stream,
            "events": len(events), "user": user, "levels": dict(levels)}


def _field(raw: dict[str, Any], key: str) -> Any:
    import json

    try:
        return json.loads(raw["message"]).get(key)
    except ValueError:
        return None


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "dev":
        result = orders_dev.execute_in_process()
        return {"success": result.success, "run_id": result.run_id}
    return run_prod()


if __name__ == "__main__":
    outcome = main()
    sys.exit(0 if outcome["success"] else 1)
