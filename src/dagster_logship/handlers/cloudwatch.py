"""``CloudWatchHandler``: a ``logging.Handler`` shipping to one CloudWatch Logs stream.

Usable without Dagster (plain ``logging``, ``logging.config.dictConfig``, ``dagster.yaml``'s
``python_logs.dagster_handler_config``): its keywords are the ``cloudwatch_logger`` config keys.
Everything is validated here, when the handler is built, so that a wrong name fails at startup
naming the key and the rule instead of spilling every record later. Building it makes no network
call and does not import boto3.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import socket
import string
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from ..dagster_records import dagster_snapshot
from ..shipping.handler import ShippingHandler
from ..shipping.options import ConfigError, ShippingOptions
from ..shipping.recursion import in_shipping_thread
from ..sinks.cloudwatch import (
    INSTALL_HINT,
    CloudWatchSink,
    credentials_fingerprint,
    validate_log_group_name,
    validate_log_stream_name,
    validate_retention,
    validate_tags,
)
from ..sinks.dagster_aws_format import (
    DagsterAwsCloudWatchSink,
    dagster_aws_snapshot,
    validate_format,
)
from ..sinks.endpoint_pin import active_moto_mock, configured_endpoint

__all__ = [
    "DEFAULT_HANDLER_STREAM",
    "STREAM_PLACEHOLDERS",
    "CloudWatchHandler",
    "console_url",
    "fill_stream_template",
]

#: What ``log_stream_name`` templates may name. The logger fills job_name and run_id (outside
#: Dagster they become "unknown-job" / "no-run"); the handler fills pid, hostname and date (UTC).
STREAM_PLACEHOLDERS = ("job_name", "run_id", "pid", "hostname", "date")
#: Outside Dagster there is no run: one stream per host, day and process keeps writers apart.
DEFAULT_HANDLER_STREAM = "{hostname}/{date}/{pid}"
_OUTSIDE_DAGSTER = {"job_name": "unknown-job", "run_id": "no-run"}


def fill_stream_template(
    template: Any, values: Mapping[str, str], *, final: bool, key: str = "log_stream_name"
) -> str:
    """Fill the placeholders of a ``log_stream_name`` template that ``values`` names.

    With ``final=False`` the result is still a template (unfilled placeholders and escaped
    braces kept), so the logger can fill job_name/run_id and the handler the rest. Unknown
    placeholders, format specs and unbalanced braces fail naming ``key``. Values lose ``:`` and
    ``*``, which stream names may not contain.
    """
    if not isinstance(template, str):
        raise ConfigError(key, f"got {template!r}", "give a string such as {job_name}/{run_id}")
    allowed = ", ".join("{" + name + "}" for name in STREAM_PLACEHOLDERS)
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigError(
            key, f"{template!r} is not a valid template ({exc})", "write {{ and }} for braces"
        ) from None
    out: list[str] = []
    for literal, field, spec, conversion in parsed:
        out.append(literal if final else literal.replace("{", "{{").replace("}", "}}"))
        if field is None:
            continue
        if field not in STREAM_PLACEHOLDERS:
            raise ConfigError(
                key, f"unknown placeholder {{{field}}} in {template!r}", f"use only {allowed}"
            )
        if spec or conversion:
            raise ConfigError(
                key,
                f"placeholder {{{field}}} in {template!r} has a format",
                f"write just {allowed}",
            )
        if field in values:
            value = str(values[field]).replace(":", "-").replace("*", "-")
            out.append(value if final else value.replace("{", "{{").replace("}", "}}"))
        elif final:  # pragma: no cover - callers always pass every placeholder when final
            raise ConfigError(key, f"no value for {{{field}}}", f"use only {allowed}")
        else:
            out.append("{" + field + "}")
    return "".join(out)


def _console_escape(name: str) -> str:
    # The console's hash route takes names URL-encoded twice with '%' written as '$'
    # ('/' becomes '$252F').
    return quote(quote(name, safe=""), safe="").replace("%", "$")


def console_url(region: str | None, log_group_name: str, log_stream_name: str) -> str:
    """The AWS console page showing the events of one stream."""
    host = f"https://{region}.console.aws.amazon.com" if region else "https://console.aws.amazon.com"
    query = f"?region={region}" if region else ""
    return (
        f"{host}/cloudwatch/home{query}#logsV2:log-groups/log-group/"
        f"{_console_escape(log_group_name)}/log-events/{_console_escape(log_stream_name)}"
    )


def _optional_str(key: str, value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigError(key, f"got a {type(value).__name__}", "give a string")
    return value


class CloudWatchHandler(ShippingHandler):
    """Ships records to CloudWatch Logs ``log_group_name`` / ``log_stream_name``.

    ``log_stream_name`` is a literal or a template of {job_name}, {run_id}, {pid}, {hostname},
    {date}. Credentials default to boto3's usual chain; explicit keys are never shown (``repr``,
    diagnostics and the destination key use a sha256 fingerprint). Accepts every shared shipping
    key (``flush_interval``, ``retry_deadline``, ``flush_timeout``, ``spill_path``...) as a keyword.

    ``format="dagster_aws"`` ships each record as dagster-aws's handler did (its record JSON,
    timestamped from Dagster's ``log_timestamp``; sinks/dagster_aws_format.py).
    ``fail_fast=True`` checks, here and once, that the group (and, with ``create_log_stream``
    false, the stream) exists and the region and credentials work, and raises
    :class:`~dagster_logship.sinks.cloudwatch.DestinationCheckError` if not.
    """

    snapshot_record = staticmethod(dagster_snapshot)  # Dagster's metadata: schema fields

    def __init__(
        self,
        log_group_name: str,
        log_stream_name: str = DEFAULT_HANDLER_STREAM,
        aws_region: str | None = None,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
        aws_profile: str | None = None,
        endpoint_url: str | None = None,
        create_log_group: bool = True,
        create_log_stream: bool = True,
        retention_in_days: int | None = None,
        tags: Mapping[str, str] | None = None,
        level: int | str = logging.NOTSET,
        format: str = "json",
        fail_fast: bool = False,
        **shipping: Any,
    ) -> None:
        options, unknown = ShippingOptions.pick(shipping)
        if unknown:
            names = ", ".join(sorted(unknown))
            raise TypeError(f"unknown keyword(s) for CloudWatchHandler: {names}")
        if importlib.util.find_spec("boto3") is None:
            raise ImportError(INSTALL_HINT)
        group = validate_log_group_name(log_group_name)
        values = {
            "pid": str(os.getpid()),
            "hostname": socket.gethostname() or "localhost",
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
            **_OUTSIDE_DAGSTER,
        }
        stream = validate_log_stream_name(fill_stream_template(log_stream_name, values, final=True))
        region = _optional_str("aws_region", aws_region)
        key_id = _optional_str("aws_access_key_id", aws_access_key_id)
        secret = _optional_str("aws_secret_access_key", aws_secret_access_key)
        token = _optional_str("aws_session_token", aws_session_token)
        profile = _optional_str("aws_profile", aws_profile)
        # Pinned now, not at the first send: see sinks/endpoint_pin.py.
        endpoint = _optional_str("endpoint_url", endpoint_url) or configured_endpoint()
        moto_mock = active_moto_mock()
        if bool(key_id) != bool(secret):
            missing, given = (
                ("aws_secret_access_key", "aws_access_key_id")
                if key_id
                else ("aws_access_key_id", "aws_secret_access_key")
            )
            raise ConfigError(
                missing, f"{given} is set but {missing} is not", "set both or neither"
            )
        if token and not key_id:
            raise ConfigError(
                "aws_session_token",
                "a session token needs aws_access_key_id and aws_secret_access_key",
                "set all three (temporary credentials) or none",
            )
        if endpoint is not None and not endpoint.startswith(("http://", "https://")):
            raise ConfigError(
                "endpoint_url", f"got {endpoint!r}", "give an http:// or https:// URL"
            )
        for flag, value in (("create_log_group", create_log_group),
                            ("create_log_stream", create_log_stream)):
            if not isinstance(value, bool):
                raise ConfigError(flag, f"got {value!r}", "use true or false")
        retention = validate_retention(retention_in_days)
        tag_map = validate_tags(tags)
        event_format = validate_format(format)
        if not isinstance(fail_fast, bool):
            raise ConfigError("fail_fast", f"got {fail_fast!r}", "use true or false")
        sink_kwargs: dict[str, Any] = {
            "aws_region": region,
            "aws_access_key_id": key_id,
            "aws_secret_access_key": secret,
            "aws_session_token": token,
            "aws_profile": profile,
            "endpoint_url": endpoint,
            "create_log_group": create_log_group,
            "create_log_stream": create_log_stream,
            "retention_in_days": retention,
            "tags": tag_map,
        }
        self.log_group_name = group
        self.log_stream_name = stream
        self.aws_region = region
        self.endpoint_url = endpoint
        #: ``json`` (the event schema) or ``dagster_aws`` (dagster-aws's record JSON)
        self.event_format = event_format
        self.under_moto_mock = moto_mock is not None
        key = (
            "cloudwatch",
            region,
            endpoint,
            profile,
            group,
            stream,
            credentials_fingerprint(key_id, secret, token),
            create_log_group,
            create_log_stream,
            retention,
            tuple(sorted(tag_map.items())) if tag_map else None,
            moto_mock,
            event_format,
        )
        sink_class = DagsterAwsCloudWatchSink if event_format == "dagster_aws" else CloudWatchSink

        def factory() -> CloudWatchSink:
            return sink_class(group, stream, moto_mock=moto_mock, **sink_kwargs)

        if fail_fast:  # before the worker exists: a failed check leaves nothing running
            check = factory()
            try:
                check.check_destination()
            finally:
                check.close()
        super().__init__(factory, key, options, level)
        if event_format == "dagster_aws":
            # Every record takes emit() (a logger may not hand over a snapshot: the JSON is
            # made from the record).
            self._emit_overridden, self._takes_snapshots = True, False
        elif (
            type(self).emit is CloudWatchHandler.emit
            and type(self).handle is ShippingHandler.handle
        ):
            # Our emit() only adds the dagster_aws branch: keep the inlined record path of
            # ShippingHandler.handle and the relay's snapshots (loggers/_relay.py).
            self._emit_overridden, self._takes_snapshots = False, True

    def emit(self, record: logging.LogRecord) -> None:
        """For ``format: dagster_aws``, the record's JSON made now on the caller's thread (what
        it holds now is what ships); else the shared path. Never raises."""
        if self.event_format != "dagster_aws":
            super().emit(record)
            return
        if in_shipping_thread():  # a record botocore made while we send: would recurse
            self._suppressed += 1
            return
        try:
            snap = dagster_aws_snapshot(record)
        except Exception as exc:  # never into the caller's code
            self._emit_failed(exc)
            return
        self.emit_snapshot(snap)

    @property
    def console_url(self) -> str:
        """Where a person reads this stream. Region as boto3 finds it without aws_region:
        AWS_DEFAULT_REGION (boto3 does not read AWS_REGION); a profile's region is not looked up."""
        region = self.aws_region or os.environ.get("AWS_DEFAULT_REGION")
        return console_url(region, self.log_group_name, self.log_stream_name)
