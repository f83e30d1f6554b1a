"""``GcpComputeLogManager``: steps' stdout/stderr and sensors' logs in Google Cloud Logging.

Layout: one log (``projects/{project}/logs/{log_name}``, default ``dagster-compute-logs``);
each entry carries the labels ``log_key`` (the Dagster log key joined by ``/``) and ``stream``
(``stdout`` or ``stderr``), besides ``run_id``, ``job_name`` and ``step_key``; its ``insertId``
is fixed per piece, so a resent entry collapses with the first.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

from dagster import Field, Noneable, StringSource
from dagster._config.config_schema import UserConfigSchema
from dagster._serdes import ConfigurableClassData

from ..handlers.gcp import GcpHandler
from .config import capture_schema, string_map
from .keys import LogKeyFacts, joined, split_joined
from .manager import ShippingComputeLogManager
from .readback import StreamState

__all__ = ["DEFAULT_GCP_READ_INTERVAL", "DEFAULT_LOG_NAME", "GcpComputeLogManager"]

DEFAULT_LOG_NAME = "dagster-compute-logs"
_EPOCH = "1970-01-01T00:00:00Z"
#: Each listing starts this long before the newest entry seen: an entry can become visible in
#: listings a while after a later one.
_LISTING_OVERLAP = timedelta(seconds=60)
#: Cloud Logging allows 60 entries.list calls a minute per project: a reader asks at most this
#: often per stream.
DEFAULT_GCP_READ_INTERVAL = 5.0
_log = logging.getLogger("dagster_logship.compute_logs")


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _moment(value: Any) -> datetime | None:
    """An entry's timestamp as an aware datetime (the client gives datetimes; text is parsed)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class GcpComputeLogManager(ShippingComputeLogManager):
    """Ships compute logs to Cloud Logging as they are written, and reads them back for the UI.

    Configured in ``dagster.yaml``::

        compute_logs:
          module: dagster_logship
          class: GcpComputeLogManager
          config:
            project: {env: GOOGLE_CLOUD_PROJECT}

    Takes ``GcpHandler``'s destination keys and the shared shipping keys. Entries cannot be
    deleted one by one in Cloud Logging: ``delete_logs`` only forgets what this process read
    (they expire with the log bucket's retention).
    """

    def __init__(
        self,
        project: str | None = None,
        log_name: str = DEFAULT_LOG_NAME,
        labels: Mapping[str, str] | None = None,
        resource_type: str = "global",
        resource_labels: Mapping[str, str] | None = None,
        api_endpoint: str | None = None,
        local_dir: str | None = None,
        tail_interval: float = 0.2,
        read_interval: float = DEFAULT_GCP_READ_INTERVAL,
        inst_data: ConfigurableClassData | None = None,
        **shipping: Any,
    ) -> None:
        super().__init__(local_dir=local_dir, tail_interval=tail_interval,
                         read_interval=read_interval, inst_data=inst_data, **shipping)
        self._destination: dict[str, Any] = {
            "project": project,
            "log_name": log_name,
            "labels": dict(labels) if labels else None,
            "resource_type": resource_type,
            "resource_labels": dict(resource_labels) if resource_labels else None,
            "api_endpoint": api_endpoint,
        }
        probe = self._handler()  # validates like the handler does; no network I/O
        probe.close()
        self.project = project
        self.log_name = log_name
        self.api_endpoint = api_endpoint
        self._client: Any = None
        self._client_project: str | None = None
        self._warned_delete = False

    def __repr__(self) -> str:
        return f"<GcpComputeLogManager log={self.log_name!r}>"

    @classmethod
    def config_type(cls) -> UserConfigSchema:
        return {
            "project": Field(Noneable(StringSource), is_required=False, default_value=None),
            "log_name": Field(StringSource, is_required=False, default_value=DEFAULT_LOG_NAME),
            "labels": Field(string_map(), is_required=False, default_value=None),
            "resource_type": Field(StringSource, is_required=False, default_value="global"),
            "resource_labels": Field(string_map(), is_required=False,
                                     default_value=None),
            "api_endpoint": Field(Noneable(StringSource), is_required=False, default_value=None),
            **capture_schema(read_interval=DEFAULT_GCP_READ_INTERVAL),
        }

    # -- writes -----------------------------------------------------------------------------

    def _handler(self) -> GcpHandler:
        return GcpHandler(**self._destination, **self._shipping)

    def _handlers(self, log_key: Sequence[str], facts: LogKeyFacts,
                  io_names: Sequence[str]) -> dict[str, logging.Handler]:
        handler = self._handler()  # one per capture: both streams, told apart by labels
        return dict.fromkeys(io_names, handler)

    def _record_extras(self, log_key: Sequence[str], io_name: str) -> Mapping[str, Any] | None:
        return {"labels": {"log_key": joined(log_key), "stream": io_name}}

    # -- reads ------------------------------------------------------------------------------

    def _logging_client(self) -> tuple[Any, str]:
        """A Cloud Logging client for reads (REST), made once; anonymous for ``api_endpoint``."""
        if self._client is None:
            from google.cloud.logging import Client

            project = self.project
            credentials: Any = None
            if self.api_endpoint:
                from google.auth.credentials import AnonymousCredentials

                credentials = AnonymousCredentials()  # type: ignore[no-untyped-call]
                project = project or os.environ.get("GOOGLE_CLOUD_PROJECT")
            if credentials is None or project is None:
                import google.auth

                found, found_project = google.auth.default(scopes=list(Client.SCOPE))
                credentials = credentials or found
                project = project or found_project
            if not project:
                raise RuntimeError("no Google Cloud project: set `project` in the config")
            options = {"api_endpoint": self.api_endpoint} if self.api_endpoint else None
            self._client = Client(  # type: ignore[no-untyped-call]
                project=project, credentials=credentials, _use_grpc=False,
                client_options=options)
            self._client_project = project
        assert self._client_project is not None
        return self._client, self._client_project

    def _filter(self, project: str, **labels: str) -> str:
        parts = [f"logName={_quoted(f'projects/{project}/logs/' + quote(self.log_name, safe=''))}"]
        parts += [f"labels.{name}={_quoted(value)}" for name, value in labels.items()]
        return " AND ".join(parts)

    def _entries(self, filter_: str) -> Any:
        from google.cloud.logging import ASCENDING

        client, project = self._logging_client()
        return client.list_entries(resource_names=[f"projects/{project}"], filter_=filter_,
                                   order_by=ASCENDING, page_size=1000)

    def _refresh(self, log_key: Sequence[str], io_name: str, state: StreamState) -> None:
        _, project = self._logging_client()
        newest: datetime | None = state.token
        since = _EPOCH if newest is None else _rfc3339(newest - _LISTING_OVERLAP)
        query = (self._filter(project, log_key=joined(log_key), stream=io_name)
                 + f' AND timestamp>="{since}"')
        for entry in self._entries(query):
            payload = getattr(entry, "payload", None)
            if isinstance(payload, Mapping):
                state.add_event(payload)
            moment = _moment(getattr(entry, "timestamp", None))
            if moment is not None and (newest is None or moment > newest):
                newest = moment
        state.token = newest

    def _location(self, log_key: Sequence[str], io_name: str) -> str:
        project = self.project or "<project of the environment's credentials>"
        where = f" at {self.api_endpoint}" if self.api_endpoint else ""
        return (f"Cloud Logging projects/{project}/logs/{self.log_name}, labels "
                f"log_key={joined(log_key)} stream={io_name}{where}")

    def _console_url(self, log_key: Sequence[str], io_name: str) -> str | None:
        if self.api_endpoint:
            return None  # a local server: Google's console does not show it
        project = self.project or os.environ.get("GOOGLE_CLOUD_PROJECT")
        if not project:
            return None
        query = quote(self._filter(project, log_key=joined(log_key), stream=io_name), safe="")
        return f"https://console.cloud.google.com/logs/query;query={query}?project={project}"

    def _delete(self, log_key: Sequence[str] | None, prefix: Sequence[str] | None) -> None:
        if not self._warned_delete:
            self._warned_delete = True
            _log.warning("dagster-logship: Cloud Logging cannot delete single entries; compute "
                         "logs stay until the log bucket's retention ends")

    def _keys_under(self, prefix: Sequence[str], io_name: str) -> list[list[str]]:
        _, project = self._logging_client()
        head = joined(prefix) + "/"
        query = (self._filter(project, stream=io_name)
                 + f" AND labels.log_key:{_quoted(head)} AND timestamp>=\"{_EPOCH}\"")
        keys: dict[str, None] = {}
        for entry in self._entries(query):
            with contextlib.suppress(Exception):
                value = (entry.labels or {}).get("log_key")
                if isinstance(value, str) and value.startswith(head):
                    keys[value] = None
        return [split_joined(value) for value in keys]
