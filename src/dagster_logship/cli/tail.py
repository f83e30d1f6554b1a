"""``dagster-logship tail``: a run's (or a job's, or a stream's) events, as readable lines.

``--run-id`` takes the whole run id or its start, such as the 8 characters tail prints and
Dagster's UI shows. A start that two runs share is refused, naming both.

CloudWatch Logs: ``--stream`` reads one stream with GetLogEvents; ``--run-id`` / ``--job`` use
FilterLogEvents over the group with a JSON filter pattern evaluated by the service:
``{ $.run_id = "302fc568-..." }`` for a whole id, ``{ $.run_id = "302fc568*" }`` for its start
(a trailing ``*`` in a quoted JSON string value is a documented wildcard, as in the CIS
CloudTrail patterns ``{ $.errorCode = "AccessDenied*" }``). The field is checked again here,
because moto does not evaluate JSON patterns (it returns every event) and a term can also match
inside a message. A log group that does not exist is an error, with or without ``--follow``
(polling a misspelled group would wait forever); a missing ``--stream`` in an existing group is
waited for with ``--follow``, since the logger creates it at the run's first batch.

Cloud Logging: ``entries.list`` with a filter on the labels the logger sets: ``labels.run_id =
"..."`` for a whole id, ``labels.run_id : "302fc568"`` (the "has" operator, a substring match)
for a start, checked again here as a prefix; ``labels.job_name`` for ``--job``.

``--follow`` polls; ``--max-polls`` and ``--timeout`` bound it, and following a run ends by
itself a poll after the run's last event (RUN_SUCCESS, RUN_FAILURE, RUN_CANCELED).
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Iterator
from typing import Any

from ._common import (
    CliError,
    Destination,
    Output,
    UsageError,
    destination_from_flags,
    dumps,
    format_event,
    load_run_configs,
    one_line,
    parse_timestamp,
    single_destination,
)

__all__ = ["add_parser", "run"]

RUN_END_EVENTS = frozenset({"RUN_SUCCESS", "RUN_FAILURE", "RUN_CANCELED"})
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_FULL_RUN_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
#: What may stand before a wildcard in a CloudWatch pattern without quoting trouble.
_PATTERN_SAFE = re.compile(r"[A-Za-z0-9_.:-]+")


class RunSelector:
    """Which run ``--run-id`` names: a whole Dagster run id, or the start of one.

    A start is resolved to the one run whose events carry it (``resolve``); from then on the
    whole id is asked for.
    """

    def __init__(self, given: str) -> None:
        self.given = given
        self.full: str | None = given if _FULL_RUN_ID.fullmatch(given) else None

    def matches(self, run_id: Any) -> bool:
        if not isinstance(run_id, str):
            return False
        return run_id == self.full if self.full else run_id.startswith(self.given)

    def resolve(self, events: list[dict[str, Any]]) -> None:
        """Pin the whole id when ``events`` carry exactly one; ``CliError`` listing the runs
        when the given start is shared by several."""
        runs: dict[str, str] = {}
        for event in events:
            run_id = event.get("run_id")
            if isinstance(run_id, str) and self.matches(run_id):
                runs.setdefault(run_id, str(event.get("job_name") or "?"))
        if self.full is not None:
            return
        if len(runs) > 1:
            listed = ", ".join(f"{run} (job {job})" for run, job in sorted(runs.items()))
            raise CliError(
                f"run id {self.given!r} is ambiguous: {len(runs)} runs start with it: {listed}; "
                "give more of the run id"
            )
        if runs:
            self.full = next(iter(runs))


def cloudwatch_pattern(field: str, value: str, prefix: bool) -> str:
    """The FilterLogEvents JSON pattern selecting events whose ``field`` is ``value`` (or, with
    ``prefix``, starts with it); empty (every event) when a start cannot be put in a pattern."""
    if not prefix:
        return f"{{ $.{field} = {json.dumps(value)} }}"
    if _PATTERN_SAFE.fullmatch(value):
        return f'{{ $.{field} = "{value}*" }}'
    return ""


def gcp_label_filter(label: str, value: str, prefix: bool) -> str:
    """The Logging query term selecting entries whose label is ``value`` (or contains it, the
    "has" operator, for a start checked as a prefix here)."""
    return f"labels.{label}{':' if prefix else '='}{json.dumps(value)}"


def add_destination_flags(parser: argparse.ArgumentParser, stream_flag: bool) -> None:
    """Where to read or write: a run config's logger, or flags (same names as the config keys)."""
    where = parser.add_argument_group("destination (a run config's logger, or flags)")
    where.add_argument("-c", "--config", metavar="CONFIG.yaml", action="append",
                       help="run config YAML whose logger says where the events are; "
                       "repeatable, merged in order (later wins), as `dagster job execute -c`")
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
    dest = _destination_as_given(args, out)
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
        if args.config:
            raise CliError(f"destination: {exc}") from None
        raise UsageError(f"destination: {exc}") from None
    return dest


def _destination_as_given(args: argparse.Namespace, out: Output) -> Destination:
    cw = {k: getattr(args, k, None) for k in
          ("log_group_name", "log_stream_name", "aws_region", "endpoint_url", "aws_profile")}
    gcp = {k: getattr(args, k, None) for k in ("project", "log_name", "api_endpoint")}
    given = [flag for flag, value in DESTINATION_FLAGS.items()
             if getattr(args, value, None) is not None]
    if args.config:
        if given:
            raise UsageError(f"give the destination either with -c CONFIG.yaml or with flags "
                             f"({', '.join(given)}), not both")
        run_config, label = load_run_configs(args.config)
        return single_destination(
            run_config, label, out, args.logger, args.kind, ("cloudwatch", "gcp"),
        )
    if args.logger is not None:
        raise UsageError("--logger picks a logger of -c CONFIG.yaml; without -c it means nothing")
    cw_given = [f for f in given if f in _CW_FLAGS]
    gcp_given = [f for f in given if f not in _CW_FLAGS]
    if cw_given and gcp_given:
        raise UsageError(f"{', '.join(cw_given)} (CloudWatch) and {', '.join(gcp_given)} "
                         "(Cloud Logging) name two destinations: give one")
    # Without -c, --kind may say what the flags already say (scripts spell it out), no more.
    named = "cloudwatch" if cw_given else "gcp" if gcp_given else None
    if args.kind is not None and named is not None and args.kind != named:
        raise UsageError(f"--kind {args.kind} does not match the flags given "
                         f"({', '.join(cw_given or gcp_given)} name {named})")
    if cw["log_group_name"]:
        return destination_from_flags("cloudwatch", cw, out)
    if cw_given:
        raise UsageError(f"{', '.join(cw_given)} without --log-group: name the log group")
    if gcp_given:
        return destination_from_flags("gcp", gcp, out)
    raise UsageError("no destination: give -c CONFIG.yaml, or --log-group (CloudWatch), or "
                     "--project/--api-endpoint (Cloud Logging)")


DESTINATION_FLAGS = {
    "--log-group": "log_group_name", "--log-stream": "log_stream_name", "--region": "aws_region",
    "--endpoint-url": "endpoint_url", "--profile": "aws_profile", "--project": "project",
    "--log-name": "log_name", "--api-endpoint": "api_endpoint",
}
_CW_FLAGS = frozenset({"--log-group", "--log-stream", "--region", "--endpoint-url", "--profile"})


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
    which.add_argument("--run-id", metavar="RUN_ID",
                       help="events of this run: its whole id or its start (the 8 characters "
                       "tail prints and Dagster's UI shows)")
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
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise UsageError(f"--since: got {text!r}; give an age such as 30s, 15m, 2h or 7d")
    return value * _UNITS.get(unit, 1)


def _check_flags(args: argparse.Namespace) -> None:
    """What argparse cannot see: values out of range and flags that need another."""
    if not args.poll_interval > 0:
        raise UsageError(f"--poll-interval must be > 0 (got {args.poll_interval:g})")
    if args.max_polls is not None and args.max_polls < 1:
        raise UsageError(f"--max-polls must be at least 1 (got {args.max_polls})")
    if args.timeout is not None and not args.timeout > 0:
        raise UsageError(f"--timeout must be > 0 (got {args.timeout:g})")
    if not args.follow:
        for flag, value in (("--max-polls", args.max_polls), ("--timeout", args.timeout)):
            if value is not None:
                raise UsageError(f"{flag} bounds --follow; add --follow or leave it out")
    if args.run_id is not None and not args.run_id.strip():
        raise UsageError("--run-id: give the run id or its first characters")
    if args.stream and (args.project or args.api_endpoint or args.log_name):
        raise UsageError("--stream is for CloudWatch Logs; for Cloud Logging use --run-id or "
                         "--job")


def run(args: argparse.Namespace, out: Output) -> int:
    _check_flags(args)
    since = time.time() - _age(args.since) if args.since else None
    dest = resolve_destination(args, out)
    selector = RunSelector(args.run_id.strip()) if args.run_id else None
    if dest.kind == "cloudwatch":
        source: _Source = _CloudWatchSource(dest, args, since, selector)
    elif args.stream:
        raise UsageError(f"--stream is for CloudWatch Logs, and {dest.key} is a Cloud Logging "
                         "logger: use --run-id or --job")
    else:
        source = _GcpSource(dest, args, since, selector)
    deadline = time.monotonic() + args.timeout if args.timeout else None
    polls = 0
    shown = 0
    ended_at: int | None = None
    while True:
        polls += 1
        batch = list(source.poll())
        if selector is not None:
            selector.resolve([event for event, _ in batch])
        for event, fallback_ms in batch:
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
    selector: RunSelector | None
    args: argparse.Namespace

    def poll(self) -> Iterator[tuple[dict[str, Any], int | None]]:
        raise NotImplementedError

    def matches(self, event: dict[str, Any]) -> bool:
        if self.selector is not None:
            return self.selector.matches(event.get("run_id"))
        if self.args.job:
            return bool(event.get("job_name") == self.args.job)
        return True


class _CloudWatchSource(_Source):
    def __init__(self, dest: Destination, args: argparse.Namespace, since: float | None,
                 selector: RunSelector | None) -> None:
        from .check import _aws_session

        try:
            from botocore.config import Config
        except ImportError:
            raise CliError("boto3 is not installed: pip install 'dagster-logship[aws]'") from None
        config = dest.config
        self.group = config["log_group_name"]
        self.args = args
        self.selector = selector
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
                if self.matches(event):
                    yield event, item.get("timestamp")
        except CliError:
            raise
        except Exception as exc:
            if _code(exc) != "ResourceNotFoundException":
                raise CliError(_aws_error(exc, self.group, self.where())) from None
            if not self.args.stream or not self._group_exists():
                raise CliError(
                    f"log group {self.group!r} does not exist ({self.where()}): check the "
                    "group name and the region (the logger creates its group at its first "
                    "send, so no run has shipped there yet)"
                ) from None
            if not self.args.follow:
                raise CliError(
                    f"log stream {self.args.stream!r} does not exist in log group "
                    f"{self.group!r} ({self.where()})"
                ) from None
            # --follow: the logger creates the stream with the run's first batch; keep polling.

    def where(self) -> str:
        """The region, and the endpoint when it is not AWS's own (moto, a VPC endpoint)."""
        meta = getattr(self.client, "meta", None)
        region = getattr(meta, "region_name", None) or "(no region)"
        endpoint = str(getattr(meta, "endpoint_url", "") or "")
        host = endpoint.split("://", 1)[-1].split("/", 1)[0]
        if endpoint and not (host.endswith(".amazonaws.com") or host.endswith(".amazonaws.com.cn")):
            return f"region {region}, endpoint {endpoint}"
        return f"region {region}"

    def _group_exists(self) -> bool:
        """Whether the group exists, asked with a permission tail needs anyway."""
        try:
            self.client.filter_log_events(logGroupName=self.group, limit=1)
        except Exception as exc:
            if _code(exc) == "ResourceNotFoundException":
                return False
        return True

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
        if self.selector is not None:
            pattern = cloudwatch_pattern("run_id", self.selector.full or self.selector.given,
                                         prefix=self.selector.full is None)
        else:
            pattern = cloudwatch_pattern("job_name", self.args.job, prefix=False)
        kwargs: dict[str, Any] = {"logGroupName": self.group, "filterPattern": pattern}
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


def _aws_error(exc: BaseException, group: str, where: str) -> str:
    response = getattr(exc, "response", None)
    code = _code(exc)
    if code in ("AccessDeniedException", "AccessDenied"):
        return (f"access denied reading {group!r}: tail needs logs:FilterLogEvents and "
                "logs:GetLogEvents")
    if code:
        message = response.get("Error", {}).get("Message", "") if isinstance(response, dict) else ""
        return f"CloudWatch Logs ({where}): {code}: {one_line(message, 200)}"
    return f"CloudWatch Logs ({where}): {type(exc).__name__}: {one_line(str(exc), 200)}"


class _GcpSource(_Source):
    """entries.list over the same REST transport the sink writes with."""

    PAGE_SIZE = 1000

    def __init__(self, dest: Destination, args: argparse.Namespace, since: float | None,
                 selector: RunSelector | None) -> None:
        from ..sinks.gcp import GcpTarget

        config = dest.config
        self.target = GcpTarget.of(project=config.get("project"), log_name=config["log_name"],
                                   api_endpoint=config.get("api_endpoint"))
        self.args = args
        self.selector = selector
        self.client, self.project = _gcp_client(self.target)
        self.since = since
        self.newest: str | None = None
        self.seen: set[tuple[str, str]] = set()

    def _filter(self) -> str:
        parts = [f'logName="{self.target.log_path(self.project)}"']
        if self.selector is not None:
            full = self.selector.full
            parts.append(gcp_label_filter("run_id", full or self.selector.given, full is None))
        elif self.args.job:
            parts.append(gcp_label_filter("job_name", self.args.job, prefix=False))
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
                if self.matches(payload):
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
