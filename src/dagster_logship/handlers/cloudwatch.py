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

from ..shipping.handler import ShippingHandler
from ..shipping.options import ConfigError, ShippingOptions
from ..shipping.remote import SinkSpec
from ..sinks.cloudwatch import (
    INSTALL_HINT,
    CloudWatchSink,
    credentials_fingerprint,
    validate_log_group_name,
    validate_log_stream_name,
    validate_retention,
    validate_tags,
)

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
    """

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
        endpoint = _optional_str("endpoint_url", endpoint_url)
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
        )

        def factory() -> CloudWatchSink:
            return CloudWatchSink(group, stream, **sink_kwargs)

        spec = SinkSpec("dagster_logship.sinks.cloudwatch", "CloudWatchSink", (group, stream),
                        sink_kwargs)
        super().__init__(factory, key, options, level, sink_spec=spec)

    @property
    def console_url(self) -> str:
        """Where a person reads this stream. Region as boto3 finds it without aws_region:
        AWS_DEFAULT_REGION (boto3 does not read AWS_REGION); a profile's region is not looked up."""
        region = self.aws_region or os.environ.get("AWS_DEFAULT_REGION")
        return console_url(region, self.log_group_name, self.log_stream_name)
