"""A Dagster job logging to Google Cloud Logging, run against the bundled fake endpoint.

Run it:  python examples/gcp_demo.py

The fake Cloud Logging server starts inside this process (no Google account, nothing leaves the
machine). It is told to throttle the first write (429) and to fail one entry of the next one
transiently, as the real service sometimes does; the logger retries only what failed. Then the
demo prints the entries that arrived. The YAML is what you would use in production, minus
``api_endpoint`` (and with your project, or none to use the one of the environment's
credentials).
"""

import os
import sys
from collections import Counter
from typing import Any

import yaml
from dagster import OpExecutionContext, job, op

from dagster_logship.loggers.gcp import gcp_logger
from dagster_logship.testing import FakeCloudLogging, flush_gcp

RUN_CONFIG_YAML = """
loggers:
  gcp:
    config:
      log_level: DEBUG
      project: demo-project
      log_name: dagster-demo
      labels:
        app: dagster-logship-demo
      api_endpoint:
        env: DEMO_GCP_ENDPOINT
      flush_interval: 0.2
      retry_initial_backoff: 0.05
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


# The YAML is also the job's default run config: a launch without one still ships.
@job(logger_defs={"gcp": gcp_logger}, config=yaml.safe_load(RUN_CONFIG_YAML))
def orders_job() -> None:
    publish_total(score_orders(fetch_orders()))


def _table(entries: list[dict[str, Any]]) -> str:
    header = ("severity", "step_key", "event_type", "insertId", "message")
    rows = []
    for entry in entries:
        payload = entry["jsonPayload"]
        message = str(payload.get("message") or "").replace("\n", " ")
        rows.append((
            entry.get("severity", ""),
            entry.get("labels", {}).get("step_key", "-"),
            str(payload.get("event_type") or "(user log)"),
            str(entry.get("insertId", ""))[:8] + "…",
            message if len(message) <= 60 else message[:57] + "...",
        ))
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> dict[str, Any]:
    """Run the job against an in-process fake server and print what arrived."""
    saved = os.environ.get("DEMO_GCP_ENDPOINT")
    with FakeCloudLogging() as server:
        os.environ["DEMO_GCP_ENDPOINT"] = server.url
        try:
            server.fail_next(1, status=429)  # the first write is throttled: retried
            server.partial_next(1, {0: "UNAVAILABLE"})  # then one entry fails: resent alone
            result = orders_job.execute_in_process(run_config=yaml.safe_load(RUN_CONFIG_YAML))
            flush_gcp(timeout=30)  # wait for this process's Cloud Logging handlers
        finally:
            if saved is None:
                os.environ.pop("DEMO_GCP_ENDPOINT", None)
            else:
                os.environ["DEMO_GCP_ENDPOINT"] = saved
        entries = [e for e in server.entries() if e["jsonPayload"]["run_id"] == result.run_id]
        entries.sort(key=lambda e: e["timestamp"])  # arrival order differs after a resend
        statuses = [r["status"] for r in server.requests()]

    log_name = entries[0]["logName"] if entries else "(nothing arrived)"
    print(f"\n{log_name}: {len(entries)} entries\n")
    print(_table(entries))
    severities = Counter(e.get("severity") for e in entries)
    user = sum(1 for e in entries if e["jsonPayload"].get("event_type") is None)
    print(
        f"\n{len(entries)} entries ({user} user records), "
        + ", ".join(f"{s} {n}" for s, n in sorted(severities.items()))
        + f"; write requests answered {statuses}"
    )
    return {
        "success": result.success,
        "run_id": result.run_id,
        "entries": len(entries),
        "user": user,
        "unique_insert_ids": len({e["insertId"] for e in entries}),
        "statuses": statuses,
    }


if __name__ == "__main__":
    outcome = main()
    sys.exit(0 if outcome["success"] else 1)
