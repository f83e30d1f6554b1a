"""The handlers compared, built the way their users build them, and how each is "acknowledged".

Every case gives a ``logging.Handler`` plus an ``ack(total, timeout)`` that returns True once
``total`` records sent through it so far are accepted by the server (the handler's own flush, then
the server's counter reaching ``total``), and ``server_stats()`` (events per request).

How each competitor is pointed at the loopback servers (and nothing else is patched):

- ours: ``CloudWatchHandler(endpoint_url=...)``, ``GcpHandler(api_endpoint=...)``,
  ``JsonStreamHandler(stream=<file on /dev/null>)``, all with default shipping options (except
  the outage runs, see :func:`build`);
- watchtower: ``CloudWatchLogHandler(boto3_client=boto3.client("logs", endpoint_url=...))``,
  its defaults (send_interval 60 s, batches of 10,000 events / 1 MiB);
- dagster-aws: ``CloudwatchLogsHandler(endpoint_url=...)`` (its Dagster logger does not pass
  endpoint_url: in Dagster runs ``AWS_ENDPOINT_URL_CLOUDWATCH_LOGS`` points boto3 at the stub);
- google-cloud-logging: ``CloudLoggingHandler(Client(project, AnonymousCredentials(),
  _use_grpc=False, client_options={"api_endpoint": ...}), resource=global)``, its default
  BackgroundThreadTransport (batches of 10); the resource is given so that it does not probe
  the GCE metadata server;
- Dagster's ``json_console_logger`` handler (StreamHandler + JsonLogFormatter) on /dev/null,
  the JSON-lines anchor.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
import urllib.request
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

warnings.filterwarnings("ignore")

REGION = "us-east-1"
GROUP = "/bench/dagster-logship"
PROJECT = "bench-project"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
}

#: Display name, short key, kind (which server counts it), and whose it is.
CASES: dict[str, dict[str, str]] = {
    "null": {"label": "NullHandler (floor)", "server": "", "owner": "stdlib"},
    "logship_cw": {"label": "logship CloudWatchHandler", "server": "stub", "owner": "ours"},
    "logship_gcp": {"label": "logship GcpHandler", "server": "gcp", "owner": "ours"},
    "logship_json": {"label": "logship JsonStreamHandler", "server": "", "owner": "ours"},
    "watchtower": {"label": "watchtower CloudWatchLogHandler", "server": "stub",
                   "owner": "watchtower"},
    "dagster_aws": {"label": "dagster-aws CloudwatchLogsHandler", "server": "stub",
                    "owner": "dagster-aws"},
    "gcl": {"label": "google-cloud-logging CloudLoggingHandler", "server": "gcp",
            "owner": "google-cloud-logging"},
    "dagster_json": {"label": "Dagster json_console_logger handler", "server": "",
                     "owner": "dagster"},
}

#: What Dagster's log manager attaches to every record it hands a logger (a user log: no event).
META = {
    "run_id": "3f0c2a4e-8d2b-4f7e-9a51-6b0f1c2d3e4f",
    "job_name": "bench_job",
    "job_tags": {"team": "data"},
    "step_key": "load_orders",
    "op_name": "load_orders",
    "resource_name": None,
    "dagster_event": None,
    "log_message_id": "0b7f7c1e-2f1d-4c3b-8f4e-5a6b7c8d9e0f",
    # dagster-aws sends this as the event time: it must be recent, or CloudWatch drops the event.
    "log_timestamp": datetime.now(timezone.utc).replace(tzinfo=None).isoformat(
        timespec="microseconds"),
}
EXTRA = {"dagster_meta": META}
#: ~110 characters once merged, a typical log line.
MESSAGE = "processed batch %d of table %s: %d rows written to s3://bucket/orders/part-%05d.parquet"


def log_one(logger: logging.Logger, i: int) -> None:
    logger.info(MESSAGE, i, "orders", 1000 + i % 977, i, extra=EXTRA)


#: The record as Dagster hands it to a job's ``@logger`` (``DagsterLogHandler.emit`` in
#: dagster/_core/log_manager.py): Dagster has merged the user's message once, the record's
#: message is its composite line ("job - run_id - step - message") with no args, and the user's
#: message is in ``dagster_meta["orig_message"]``. Prepared once, so that the timed call is the
#: logging call alone, as in ``log_one``.
DAGSTER_MESSAGE = MESSAGE % (7, "orders", 1007, 7)
DAGSTER_LINE = f"bench_job - {META['run_id']} - load_orders - {DAGSTER_MESSAGE}"
EXTRA_DAGSTER = {"dagster_meta": dict(META, orig_message=DAGSTER_MESSAGE)}


def log_dagster(logger: logging.Logger, i: int) -> None:
    logger.log(logging.INFO, DAGSTER_LINE, extra=EXTRA_DAGSTER)


def get_json(url: str, timeout: float = 630.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def post(url: str) -> None:
    request = urllib.request.Request(url, data=b"{}", method="POST")
    with urllib.request.urlopen(request, timeout=30):
        pass


def closed_port_url() -> str:
    """An http URL on loopback where nothing listens: connection refused, a backend that is down."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@dataclass
class Built:
    handler: logging.Handler
    flush: Callable[[float], bool]
    server: str  # "stub", "gcp" or ""
    name: str  # stream / log name the server counts under
    urls: dict[str, str]
    extra: dict[str, Any] = field(default_factory=dict)

    def counted(self) -> int:
        stats = self.server_stats()
        return int(stats.get("events", stats.get("entries", 0))) if stats else 0

    def server_stats(self) -> dict[str, Any] | None:
        if self.server == "stub":
            return dict(get_json(f"{self.urls['stub']}/_stub/stats?stream={self.name}"))
        if self.server == "gcp":
            return dict(get_json(f"{self.urls['gcp']}/_fake/bench_stats?log={self.name}"))
        return None

    def ack(self, total: int, timeout: float) -> bool:
        """True once ``total`` records of this case are accepted by the server (bounded)."""
        import time

        deadline = time.monotonic() + timeout
        flushed = self.flush(timeout)
        remaining = max(0.1, deadline - time.monotonic())
        if self.server == "stub":
            url = f"{self.urls['stub']}/_stub/wait?stream={self.name}&count={total}"
            return bool(get_json(f"{url}&timeout={remaining:.1f}")["ok"])
        if self.server == "gcp":
            url = f"{self.urls['gcp']}/_fake/bench_wait?log={self.name}&count={total}"
            return bool(get_json(f"{url}&timeout={remaining:.1f}")["ok"])
        return flushed


def _ours_flush(handler: Any) -> Callable[[float], bool]:
    return lambda timeout: bool(handler.flush(timeout))


def _plain_flush(handler: logging.Handler) -> Callable[[float], bool]:
    def flush(timeout: float) -> bool:
        handler.flush()
        return True

    return flush


def boto_client(endpoint: str) -> Any:
    import boto3

    return boto3.client("logs", region_name=REGION, endpoint_url=endpoint)


def build(case: str, urls: dict[str, str], name: str, *, down: bool = False,
          spill_dir: str | None = None) -> Built:
    """Build ``case`` shipping under ``name``; with ``down`` its backend refuses connections.

    Outage runs of our handlers use ``overflow="drop_oldest"``: with the default ``block`` every
    log call past a full queue waits ``block_timeout`` (0.5 s), so 1,000,000 calls would take
    days; the memory bound is the same queue bound either way. Spills go to a file.
    """
    for key, value in CREDENTIALS.items():
        os.environ.setdefault(key, value)
    stub = closed_port_url() if down else urls.get("stub", "")
    gcp = closed_port_url() if down else urls.get("gcp", "")
    ours_extra: dict[str, Any] = {}
    if down:
        ours_extra = {"overflow": "drop_oldest",
                      "spill_path": os.path.join(spill_dir or tempfile.gettempdir(),
                                                 f"{name}.spill.jsonl")}
    if case == "null":
        return Built(logging.NullHandler(), lambda t: True, "", name, urls)
    if case == "logship_cw":
        from dagster_logship import CloudWatchHandler

        h = CloudWatchHandler(log_group_name=GROUP, log_stream_name=name, aws_region=REGION,
                              endpoint_url=stub, **ours_extra)
        return Built(h, _ours_flush(h), "stub", name, urls)
    if case == "logship_gcp":
        from dagster_logship import GcpHandler

        h2 = GcpHandler(project=PROJECT, log_name=name, api_endpoint=gcp, **ours_extra)
        return Built(h2, _ours_flush(h2), "gcp", name, urls)
    if case == "logship_json":
        from dagster_logship import JsonStreamHandler

        stream, extra = _sink_stream(down)
        h3 = JsonStreamHandler(stream=stream, **ours_extra)
        return Built(h3, _ours_flush(h3), "", name, urls, extra)
    if case == "watchtower":
        import watchtower

        h4 = watchtower.CloudWatchLogHandler(
            log_group_name=GROUP, log_stream_name=name, boto3_client=boto_client(stub),
            create_log_group=not down,  # else its constructor fails against a down backend
        )
        return Built(h4, _plain_flush(h4), "stub", name, urls)
    if case == "dagster_aws":
        from dagster_aws.cloudwatch.loggers import CloudwatchLogsHandler

        # Its constructor checks that the group and stream exist, so it is built against the live
        # stub; for an outage its client is then pointed at the down port.
        h5 = CloudwatchLogsHandler(GROUP, name, aws_region=REGION, endpoint_url=urls["stub"])
        if down:
            h5.client = boto_client(stub)
        return Built(h5, _plain_flush(h5), "stub", name, urls)
    if case == "gcl":
        from google.auth.credentials import AnonymousCredentials
        from google.cloud.logging import Client
        from google.cloud.logging.handlers import CloudLoggingHandler
        from google.cloud.logging_v2.resource import Resource

        client = Client(project=PROJECT, credentials=AnonymousCredentials(), _use_grpc=False,
                        client_options={"api_endpoint": gcp})
        h6 = CloudLoggingHandler(client, name=name, resource=Resource(type="global", labels={}))
        return Built(h6, _plain_flush(h6), "gcp", name, urls)
    if case == "dagster_json":
        from dagster._loggers import JsonLogFormatter

        stream, extra = _sink_stream(down)
        h7 = logging.StreamHandler(stream)
        h7.setFormatter(JsonLogFormatter())
        return Built(h7, _plain_flush(h7), "", name, urls, extra)
    raise KeyError(case)


def _sink_stream(down: bool) -> tuple[Any, dict[str, Any]]:
    """/dev/null, or for an outage a pipe nobody reads (a stalled log agent)."""
    if not down:
        return open(os.devnull, "w"), {}  # lives as long as the process
    read_fd, write_fd = os.pipe()
    return os.fdopen(write_fd, "w"), {"pipe_read_fd": read_fd}
