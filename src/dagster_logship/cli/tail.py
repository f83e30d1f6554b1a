"""``dagster-logship tail``: a run's (or a job's, or a stream's) events, as readable lines.

CloudWatch Logs: ``--stream`` reads one stream with GetLogEvents; ``--run-id`` / ``--job`` use
FilterLogEvents over the group with a JSON filter pattern (``{ $.run_id = "..." }``, evaluated by
the service) and check the field again here, since a pattern can also match inside a message.
Cloud Logging: ``entries.list`` with a filter on the labels the logger sets (``labels.run_id``,
``labels.job_name``). ``--follow`` polls; ``--max-polls`` and ``--timeout`` bound it, and
following a run ends by itself a poll after the run's last event (RUN_SUCCESS, RUN_FAILURE,
RUN_CANCELED).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from typing import Any

from ._common import (
    CliError,
    Destination,
    Output,
    destination_from_flags,
    dumps,
    format_event,
    load_run_config,
    one_line,
    parse_timestamp,
    single_destination,
)

__all__ = ["add_parser", "run"]

RUN_END_EVENTS = frozenset({"RUN_SUCCESS", "RUN_FAILURE", "RUN_CANCELED"})
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def add_destination_flags(parser: argparse.ArgumentParser, stream_flag: bool) -> None:
    """Where to read or write: a run config's logger, or flags (same names as the config keys)."""
    where = parser.add_argument_group("destination (a run config's logger, or flags)")
    where.add_argument("-c", "--config", metavar="CONFIG.yaml",
                       help="run config YAML whose logger says where the events are")
    where.add_argument("--logger", metavar="KEY", help="which key under loggers: (if several)")
    where.add_argument("--kind", choices=("cloudwatch", "gcp"),
                       help="which logger KEY is, when its config keys do not tell")
    where.add_argument("--log-group", dest="log_group_name", metavar="NAME",
                       help="CloudWatch Logs log group")
    if stream_flag:
        where.add_argument("--log-stream", dest="log_stream_name", metavar="NAME",
                           help="CloudWatch Logs stream or template (default {job_name}/{run_id})")
    where.add_argument("--region", dest="aws_region", metavar="REGION", help="AWS region")
    where.add_argument("--endpoint-url", metavar="URL", help="CloudWatch endpoint (moto...)")
    where.add_argument("--profile", dest="aws_profile", metavar="NAME", help="AWS profile")
    where.add_argument("--project", metavar="ID", help="Google Cloud project")
    where.add_argument("--log-name", metavar="NAME", help="Cloud Logging log name (dagster)")
    where.add_argument("--api-endpoint", metavar="URL",
                       help="Cloud Logging endpoint (a local fake server)")


def resolve_destination(args: argparse.Namespace, out: Output) -> Destination:
    """The destination of -c CONFIG.yaml (its one CloudWatch or Cloud Logging logger) or of the
    flags, its names checked by the rules the handler applies."""
    dest = _resolve_destination(args, out)
    from ..shipping.options import ConfigError

    config = dest.config
    try:
        if dest.kind == "cloudwatch":
            from ..handlers.cloudwatch import STREAM_PLACEHOLDERS, fill_stream_template
            from ..sinks.cloudwatch import validate_log_group_name, validate_log_stream_name

            validate_log_group_name(config["log_group_name"])
            sample = {name: "x" for name in STREAM_PLACEHOLDERS}
            validate_log_stream_name(
                fill_stream_template(config["log_stream_name"], sample, final=True))
        else:
            from ..sinks.gcp import GcpTarget

            GcpTarget.of(project=config.get("project"), log_name=config["log_name"],
                         api_endpoint=config.get("api_endpoint"))
    except ConfigError as exc:
        raise CliError(f"destination: {exc}") from None
    return dest


def _resolve_destination(args: argparse.Namespace, out: Output) -> Destination:
    cw = {k: getattr(args, k, None) for k in
          ("log_group_name", "log_stream_name", "aws_region", "endpoint_url", "aws_profile")}
    gcp = {k: getattr(args, k, None) for k in ("project", "log_name", "api_endpoint")}
    if args.config:
        if any(v is not None for v in (*cw.values(), *gcp.values())):
            raise CliError("give the destination either with -c CONFIG.yaml or with flags, "
                           "not both")
        return single_destination(
            load_run_config(args.config), args.config, out, args.logger, args.kind,
            ("cloudwatch", "gcp"),
        )
    if cw["log_group_name"]:
        return destination_from_flags("cloudwatch", cw, out)
    if any(v is not None for v in gcp.values()):
        return destination_from_flags("gcp", gcp, out)
    raise CliError("no destination: give -c CONFIG.yaml, or --log-group (CloudWatch), or "
                   "--project/--api-endpoint (Cloud Logging)")


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "tail",
        help="print a run's events from CloudWatch Logs or Cloud Logging",
        description=(
            "Print the events of a run (--run-id), of a job's runs (--job) or of a CloudWatch "
            "stream (--stream) as readable lines: time, level, run id, step, event type, "
            "message. --follow keeps polling for new events."
        ),
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--run-id", help="events of this run")
    which.add_argument("--job", help="events of this job's runs")
    which.add_argument("--stream", help="every event of this CloudWatch stream")
    add_destination_flags(parser, stream_flag=False)
    parser.add_argument("--since", metavar="AGE",
                        help="only events newer than AGE (30s, 15m, 2h, 7d)")
    parser.add_argument("-f", "--follow", action="store_true", help="keep polling")
    parser.add_argument("--poll-interval", type=float, default=2.0, metavar="SECONDS",
                        help="seconds between polls with --follow (2)")
    parser.add_argument("--max-polls", type=int, metavar="N",
                        help="with --follow, stop after N polls")
    parser.add_argument("--timeout", type=float, metavar="SECONDS",
                        help="with --follow, stop after SECONDS")
    parser.add_argument("--json", action="store_true", help="print each event as JSON")
    parser.set_defaults(func=run)


def _age(text: str) -> float:
    unit = text[-1:].lower()
    number = text[:-1] if unit in _UNITS else text
    try:
        value = float(number)
    except ValueError:
        raise CliError(f"--since: got {text!r}; give an age such as 30s, 15m, 2h or 7d") from None
    return value * _UNITS.get(unit, 1)


def run(args: argparse.Namespace, out: Output) -> int:
    if args.poll_interval <= 0:
        raise CliError("--poll-interval must be > 0")
    if args.max_polls is not None and args.max_polls < 1:
        raise CliError("--max-polls must be at least 1")
    dest = resolve_destination(args, out)
    since = time.time() - _age(args.since) if args.since else None
    if dest.kind == "cloudwatch":
        source: _Source = _CloudWatchSource(dest, args, since)
    elif args.stream:
        raise CliError("--stream is for CloudWatch Logs; for Cloud Logging use --run-id or --job")
    else:
        source = _GcpSource(dest, args, since)
    deadline = time.monotonic() + args.timeout if args.timeout else None
    polls = 0
    shown = 0
    ended_at: int | None = None
    while True:
        polls += 1
        for event, fallback_ms in source.poll():
            shown += 1
            out.line(dumps(event) if args.json else format_event(event, fallback_ms))
            if args.run_id and event.get("event_type") in RUN_END_EVENTS:
                ended_at = ended_at or polls
        if not args.follow:
            break
        if ended_at is not None and polls > ended_at:
            break  # one more poll after the run ended picks up stragglers
        if args.max_polls is not None and polls >= args.max_polls:
            break
        if deadline is not None and time.monotonic() + args.poll_interval > deadline:
            break
        time.sleep(args.poll_interval)  # polling a remote service: there is nothing to wait on
    if not shown and not args.follow:
        out.error(f"dagster-logship tail: no events found in {dest.describe()}")
    return 0


class _Source:
    def poll(self) -> Iterator[tuple[dict[str, Any], int | None]]:
        raise NotImplementedError


def _matches(event: dict[str, Any], args: argparse.Namespace) -> bool:
    if args.run_id:
        return bool(event.get("run_id") == args.run_id)
    if args.job:
        return bool(event.get("job_name") == args.job)
    return True


class _CloudWatchSource(_Source):
    def __init__(self, dest: Destination, args: argparse.Namespace, since: float | None) -> None:
        from .check import _aws_session

        try:
            from botocore.config import Config
        except ImportError:
            raise CliError("boto3 is not installed: pip install 'dagster-logship[aws]'") from None
        config = dest.config
        self.group = config["log_group_name"]
        self.args = args
        self.start_ms = int(since * 1000) if since else None
        self.token: str | None = None
        self.seen: set[str] = set()
        try:
            session = _aws_session(config)
            self.client = session.client(
                "logs", endpoint_url=config.get("endpoint_url"),
                config=Config(retries={"total_max_attempts": 3, "mode": "standard"},
                              connect_timeout=5, read_timeout=30,
                              user_agent_extra="dagster-logship-cli"),
            )
        except Exception as exc:
            raise CliError(f"cannot make a CloudWatch Logs client: {one_line(str(exc))}") from None

    def poll(self) -> Iterator[tuple[dict[str, Any], int | None]]:
        try:
            raw = self._stream() if self.args.stream else self._filtered()
            for item in raw:
                text = item.get("message", "")
                try:
                    event = json.loads(text)
                except ValueError:
                    event = None
                if not isinstance(event, dict):
                    if self.args.stream:
                        yield {"message": text}, item.get("timestamp")
                    continue
                if _matches(event, self.args):
                    yield event, item.get("timestamp")
        except CliError:
            raise
        except Exception as exc:
            if self.args.follow and _code(exc) == "ResourceNotFoundException":
                return  # the group or stream appears with the run's first batch: keep polling
            raise CliError(_aws_error(exc, self.group)) from None

    def _stream(self) -> Iterator[dict[str, Any]]:
        while True:
            kwargs: dict[str, Any] = {"logGroupName": self.group,
                                      "logStreamName": self.args.stream, "startFromHead": True}
            if self.token:
                kwargs["nextToken"] = self.token
            elif self.start_ms:
                kwargs["startTime"] = self.start_ms
            page = self.client.get_log_events(**kwargs)
            yield from page.get("events", [])
            token = page.get("nextForwardToken")
            if not token or token == self.token:
                return
            self.token = token

    def _filtered(self) -> Iterator[dict[str, Any]]:
        field, value = ("run_id", self.args.run_id) if self.args.run_id else (
            "job_name", self.args.job)
        kwargs: dict[str, Any] = {
            "logGroupName": self.group,
            "filterPattern": f'{{ $.{field} = {json.dumps(value)} }}',
        }
        if self.start_ms:
            kwargs["startTime"] = self.start_ms
        events: list[dict[str, Any]] = []
        for page in self.client.get_paginator("filter_log_events").paginate(**kwargs):
            events.extend(page.get("events", []))
        events.sort(key=lambda e: (e.get("timestamp", 0), e.get("ingestionTime", 0)))
        for item in events:
            ident = f"{item.get('logStreamName')}/{item.get('eventId')}"
            if ident in self.seen:
                continue
            self.seen.add(ident)
            yield item
        if events:
            # Next poll from the newest timestamp on; events at that millisecond are deduplicated.
            self.start_ms = max(self.start_ms or 0, max(e.get("timestamp", 0) for e in events))


def _code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    return code if isinstance(code, str) else None


def _aws_error(exc: BaseException, group: str) -> str:
    response = getattr(exc, "response", None)
    code = _code(exc)
    if code == "ResourceNotFoundException":
        return f"log group {group!r} (or the stream) does not exist"
    if code in ("AccessDeniedException", "AccessDenied"):
        return (f"access denied reading {group!r}: tail needs logs:FilterLogEvents and "
                "logs:GetLogEvents")
    if code:
        message = response.get("Error", {}).get("Message", "") if isinstance(response, dict) else ""
        return f"CloudWatch Logs: {code}: {one_line(message, 200)}"
    return f"CloudWatch Logs: {type(exc).__name__}: {one_line(str(exc), 200)}"


class _GcpSource(_Source):
    """entries.list over the same REST transport the sink writes with."""

    PAGE_SIZE = 1000

    def __init__(self, dest: Destination, args: argparse.Namespace, since: float | None) -> None:
        from ..sinks.gcp import GcpTarget

        config = dest.config
        self.target = GcpTarget.of(project=config.get("project"), log_name=config["log_name"],
                                   api_endpoint=config.get("api_endpoint"))
        self.args = args
        self.client, self.project = _gcp_client(self.target)
        self.since = since
        self.newest: str | None = None
        self.seen: set[tuple[str, str]] = set()

    def _filter(self) -> str:
        parts = [f'logName="{self.target.log_path(self.project)}"']
        if self.args.run_id:
            parts.append(f"labels.run_id={json.dumps(self.args.run_id)}")
        elif self.args.job:
            parts.append(f"labels.job_name={json.dumps(self.args.job)}")
        if self.newest:
            parts.append(f'timestamp>="{self.newest}"')
        elif self.since:
            from datetime import datetime, timezone

            start = datetime.fromtimestamp(self.since, tz=timezone.utc)
            parts.append(f'timestamp>="{start.isoformat().replace("+00:00", "Z")}"')
        return " AND ".join(parts)

    def poll(self) -> Iterator[tuple[dict[str, Any], int | None]]:
        body: dict[str, Any] = {
            "resourceNames": [f"projects/{self.project}"],
            "filter": self._filter(),
            "orderBy": "timestamp asc",
            "pageSize": self.PAGE_SIZE,
        }
        entries: list[dict[str, Any]] = []
        while True:
            try:
                page = self.client.logging_api.api_request(
                    method="POST", path="/entries:list", data=body)
            except Exception as exc:
                raise CliError(f"Cloud Logging entries.list: {one_line(str(exc), 300)}") from None
            entries.extend(page.get("entries", []) or [])
            token = page.get("nextPageToken")
            if not token:
                break
            body["pageToken"] = token
        for entry in entries:
            stamp = str(entry.get("timestamp") or "")
            ident = (str(entry.get("insertId")), stamp)
            if ident in self.seen:
                continue
            self.seen.add(ident)
            if stamp and (self.newest is None or (parse_timestamp(stamp) or 0) >= (
                    parse_timestamp(self.newest) or 0)):
                self.newest = stamp
            payload = entry.get("jsonPayload")
            if isinstance(payload, dict):
                if _matches(payload, self.args):
                    yield payload, None
            elif "textPayload" in entry:
                yield {"timestamp": stamp, "level": entry.get("severity"),
                       "message": entry["textPayload"]}, None


def _gcp_client(target: Any) -> tuple[Any, str]:
    """A Cloud Logging client made the way the sink makes it (anonymous with api_endpoint)."""
    import os

    try:
        import google.auth
        from google.auth import exceptions as auth_exceptions
        from google.auth.credentials import AnonymousCredentials
        from google.cloud.logging import Client
    except ImportError:
        raise CliError(
            "google-cloud-logging is not installed: pip install 'dagster-logship[gcp]'"
        ) from None
    project = target.project
    credentials: Any = None
    if target.api_endpoint:
        credentials = AnonymousCredentials()  # type: ignore[no-untyped-call]
        project = project or os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get(
            "GCLOUD_PROJECT")
    else:
        try:
            credentials, found = google.auth.default(scopes=list(Client.SCOPE))
        except auth_exceptions.DefaultCredentialsError as exc:
            raise CliError(f"no Google credentials ({one_line(str(exc), 200)}): run `gcloud "
                           "auth application-default login` or set "
                           "GOOGLE_APPLICATION_CREDENTIALS") from None
        project = project or found
    if not project:
        raise CliError("no Google Cloud project: give --project (or GOOGLE_CLOUD_PROJECT)")
    options = {"api_endpoint": target.api_endpoint} if target.api_endpoint else None
    client = Client(  # type: ignore[no-untyped-call]
        project=project, credentials=credentials, _use_grpc=False, client_options=options
    )
    return client, project
