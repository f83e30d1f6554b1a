"""``CloudWatchComputeLogManager``: steps' stdout/stderr and sensors' logs in CloudWatch Logs.

Layout: one log group (``log_group_name``); one stream per captured stream, named
``{log key joined by /}/{stdout|stderr}``, e.g. ``{run_id}/compute_logs/{file_key}/stdout`` for
a step process and ``{repository}/{sensor}/{YYYYMMDD_HHMMSS}/stderr`` for a sensor tick. Each
event is our JSON schema event (see ``capture.py`` for the compute log fields).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

from dagster import BoolSource, Field, IntSource, Noneable, StringSource
from dagster._config.config_schema import UserConfigSchema
from dagster._serdes import ConfigurableClassData

from ..handlers.cloudwatch import CloudWatchHandler, console_url
from .config import capture_schema, string_map
from .keys import LogKeyFacts, joined, split_joined
from .manager import ShippingComputeLogManager
from .readback import StreamState

__all__ = ["CloudWatchComputeLogManager"]

_PAGE = 10_000  # GetLogEvents' largest page


def _stream_name(log_key: Sequence[str], io_name: str) -> str:
    return f"{joined(log_key)}/{io_name}"


class CloudWatchComputeLogManager(ShippingComputeLogManager):
    """Ships compute logs to CloudWatch Logs as they are written, and reads them back for the UI.

    Configured in ``dagster.yaml``::

        compute_logs:
          module: dagster_logship
          class: CloudWatchComputeLogManager
          config:
            log_group_name: /dagster/compute-logs
            aws_region: {env: AWS_REGION}

    Takes ``CloudWatchHandler``'s destination keys (but ``log_stream_name``, made from the log
    key) and the shared shipping keys. Credentials are used for writes and reads alike and are
    never shown.
    """

    def __init__(
        self,
        log_group_name: str,
        aws_region: str | None = None,
        endpoint_url: str | None = None,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
        aws_profile: str | None = None,
        create_log_group: bool = True,
        retention_in_days: int | None = None,
        tags: Mapping[str, str] | None = None,
        local_dir: str | None = None,
        tail_interval: float = 0.2,
        read_interval: float = 1.0,
        inst_data: ConfigurableClassData | None = None,
        **shipping: Any,
    ) -> None:
        super().__init__(local_dir=local_dir, tail_interval=tail_interval,
                         read_interval=read_interval, inst_data=inst_data, **shipping)
        self._destination: dict[str, Any] = {
            "log_group_name": log_group_name,
            "aws_region": aws_region,
            "endpoint_url": endpoint_url,
            "aws_access_key_id": aws_access_key_id,
            "aws_secret_access_key": aws_secret_access_key,
            "aws_session_token": aws_session_token,
            "aws_profile": aws_profile,
            "create_log_group": create_log_group,
            "create_log_stream": True,
            "retention_in_days": retention_in_days,
            "tags": dict(tags) if tags else None,
        }
        # Validated as the handler validates (names the key and the fix), with no network I/O;
        # the probe also pins the endpoint in force now (AWS_ENDPOINT_URL_CLOUDWATCH_LOGS).
        probe = self._handler("probe")
        self.log_group_name = probe.log_group_name
        self.endpoint_url = probe.endpoint_url
        self.aws_region = probe.aws_region
        probe.close()
        self._client: Any = None

    def __repr__(self) -> str:
        return f"<CloudWatchComputeLogManager group={self.log_group_name!r}>"

    @classmethod
    def config_type(cls) -> UserConfigSchema:
        return {
            "log_group_name": Field(StringSource, description="The log group of every stream."),
            "aws_region": Field(Noneable(StringSource), is_required=False, default_value=None),
            "endpoint_url": Field(Noneable(StringSource), is_required=False, default_value=None),
            "aws_access_key_id": Field(Noneable(StringSource), is_required=False,
                                       default_value=None),
            "aws_secret_access_key": Field(Noneable(StringSource), is_required=False,
                                           default_value=None),
            "aws_session_token": Field(Noneable(StringSource), is_required=False,
                                       default_value=None),
            "aws_profile": Field(Noneable(StringSource), is_required=False, default_value=None),
            "create_log_group": Field(BoolSource, is_required=False, default_value=True),
            "retention_in_days": Field(Noneable(IntSource), is_required=False,
                                       default_value=None),
            "tags": Field(string_map(), is_required=False, default_value=None),
            **capture_schema(),
        }

    # -- writes -----------------------------------------------------------------------------

    def _handler(self, stream: str) -> CloudWatchHandler:
        return CloudWatchHandler(log_stream_name=stream, **self._destination, **self._shipping)

    def _handlers(self, log_key: Sequence[str], facts: LogKeyFacts,
                  io_names: Sequence[str]) -> dict[str, logging.Handler]:
        return {name: self._handler(_stream_name(log_key, name)) for name in io_names}

    # -- reads ------------------------------------------------------------------------------

    def _logs(self) -> Any:
        """A CloudWatch Logs client for reads, made once (boto3 imported only here)."""
        if self._client is None:
            import boto3
            from botocore.config import Config

            d = self._destination
            session = boto3.session.Session(
                aws_access_key_id=d["aws_access_key_id"],
                aws_secret_access_key=d["aws_secret_access_key"],
                aws_session_token=d["aws_session_token"],
                profile_name=d["aws_profile"],
                region_name=self.aws_region,
            )
            self._client = session.client(
                "logs", endpoint_url=self.endpoint_url,
                config=Config(connect_timeout=5, read_timeout=15,
                              retries={"mode": "standard", "max_attempts": 3}),
            )
        return self._client

    def _refresh(self, log_key: Sequence[str], io_name: str, state: StreamState) -> None:
        import json

        client = self._logs()
        token = state.token
        while True:
            kwargs: dict[str, Any] = {
                "logGroupName": self.log_group_name,
                "logStreamName": _stream_name(log_key, io_name),
                "startFromHead": True,
                "limit": _PAGE,
            }
            if token is not None:
                kwargs["nextToken"] = token
            try:
                page = client.get_log_events(**kwargs)
            except client.exceptions.ResourceNotFoundException:
                return  # no such stream (yet)
            state.exists = True
            for event in page.get("events", []):
                try:
                    parsed = json.loads(event.get("message", ""))
                except ValueError:
                    continue
                if isinstance(parsed, dict):
                    state.add_event(parsed)
            next_token = page.get("nextForwardToken")
            if next_token is None or next_token == token:
                break
            token = next_token
        state.token = token

    def _location(self, log_key: Sequence[str], io_name: str) -> str:
        where = f" at {self.endpoint_url}" if self.endpoint_url else ""
        return (f"CloudWatch Logs group {self.log_group_name}, stream "
                f"{_stream_name(log_key, io_name)}{where}")

    def _console_url(self, log_key: Sequence[str], io_name: str) -> str | None:
        if self.endpoint_url:
            return None  # moto, LocalStack: AWS's console does not show them
        region = self.aws_region or os.environ.get("AWS_DEFAULT_REGION")
        return console_url(region, self.log_group_name, _stream_name(log_key, io_name))

    def _streams(self, prefix: str) -> list[str]:
        client = self._logs()
        names: list[str] = []
        try:
            pages = client.get_paginator("describe_log_streams").paginate(
                logGroupName=self.log_group_name, logStreamNamePrefix=prefix)
            for page in pages:
                names.extend(s["logStreamName"] for s in page.get("logStreams", []))
        except client.exceptions.ResourceNotFoundException:
            return []
        return names

    def _delete(self, log_key: Sequence[str] | None, prefix: Sequence[str] | None) -> None:
        client = self._logs()
        if log_key:
            names = [_stream_name(log_key, name) for name in ("stdout", "stderr")]
        else:
            names = self._streams(joined(prefix or []) + "/")
        for name in names:
            try:
                client.delete_log_stream(logGroupName=self.log_group_name, logStreamName=name)
            except client.exceptions.ResourceNotFoundException:
                continue

    def _keys_under(self, prefix: Sequence[str], io_name: str) -> list[list[str]]:
        suffix = f"/{io_name}"
        return [
            split_joined(name[: -len(suffix)])
            for name in self._streams(joined(prefix) + "/")
            if name.endswith(suffix)
        ]
