"""Google Cloud Logging: ``entries.write`` over REST, with partial success read entry by entry.

Why REST and the client's low-level API rather than ``Logger.log_struct`` or gRPC:

- a non-2xx answer to a ``partialSuccess`` write carries a ``google.rpc.Status`` whose details
  hold ``WriteLogEntriesPartialErrors.logEntryErrors`` (entry index → status). Over REST these
  arrive as plain JSON in the error body (``GoogleAPICallError.details``), so entries that failed
  transiently can be retried alone and accepted ones are never sent again;
- ``Logger.write``/``log_struct`` prepend a library "diagnostic" entry to the first write of a
  process (``_add_instrumentation``); we post to ``/entries:write`` ourselves through
  ``client.logging_api.api_request``, which never adds it, so what arrives is exactly our events;
- the REST transport is a ``requests`` session that can simply be dropped after ``fork``
  (Dagster's step processes), unlike a gRPC channel;
- we choose the HTTP timeout (the client's ``write_entries`` always waits up to 60 s).

The entry JSON is put together from the already encoded event text, so the event is serialized
once, and the body's size is known exactly. Nothing here sleeps or retries: failures are
classified into the errors of :mod:`..shipping.retry` and the worker decides.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring
from typing import Any, NamedTuple
from urllib.parse import quote, urlsplit, urlunsplit

from ..shipping.encoding import build_event, encode, finish_text, rfc3339
from ..shipping.options import ConfigError
from ..shipping.recursion import quiet_loggers
from ..shipping.retry import BatchRejectedError, RetryableError
from ..shipping.sink import PAYLOAD, TEXT, ItemTuple, SendResult, Sink, SinkLimits, event_of
from ..shipping.snapshots import (
    CREATED,
    HAS_META,
    JOB_NAME,
    LEVEL,
    LOG_MESSAGE_ID,
    RUN_ID,
    STEP_KEY,
    Snapshot,
)
from .gcp_format import (
    SPECIAL_KEYS,
    needs_project,
    payload_text,
    severity_of,
    source_location_of,
    structure,
)

__all__ = [
    "MAX_ENTRY_BYTES",
    "MAX_REQUEST_BYTES",
    "GcpSink",
    "GcpTarget",
    "require_sdk",
]

#: ``entries.write`` request limit (10 MB; counted as decimal megabytes to be safe).
MAX_REQUEST_BYTES = 10_000_000
#: One ``LogEntry`` (256 KiB).
MAX_ENTRY_BYTES = 256 * 1024
#: What we put in one request: 10% under the limit, so that an under-estimated per-entry overhead
#: (long source paths, step keys) cannot push a request over it.
BATCH_BYTES = 9 * 1024 * 1024
#: Entries per request. The API documents no count limit; 1000 bounds what one failed request
#: makes us resend and how long one request takes to build and parse, while ~1000 x 200 byte
#: records still make a request of a fraction of the byte budget, so the API's
#: requests-per-minute quota is not what limits throughput.
BATCH_EVENTS = 1000
#: Room kept in one entry for what is not the event text (insertId, labels, sourceLocation,
#: split, timestamp) and for the service counting the protobuf form rather than our JSON.
ENTRY_MARGIN = 32 * 1024
#: Bytes of entry metadata besides the event text and user labels, typically (insertId 45,
#: timestamp 30, severity 20, labels copied from the event ~200, sourceLocation ~150, split ~90,
#: keys and punctuation ~60). Used for batch accounting; BATCH_BYTES leaves room for outliers.
ENTRY_OVERHEAD = 600
#: (connect, read) timeout of one request. The worker's retry deadline bounds the total.
HTTP_TIMEOUT = (10.0, 60.0)

_SDK_HINT = "pip install 'dagster-logship[gcp]'"
_LOG_NAME_RE = re.compile(r"^[A-Za-z0-9/_\-.]{1,511}$")
_PROJECT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9\-.:_]{0,127}$")
_RESOURCE_TYPE_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,256}$")
_MAX_USER_LABELS = 61  # 64 labels per entry, 3 of them ours (run_id, job_name, step_key)
_MAX_LABEL_KEY_BYTES = 512
_MAX_LABEL_VALUE_BYTES = 64 * 1024
_PARTIAL_ERRORS_TYPE = "type.googleapis.com/google.logging.v2.WriteLogEntriesPartialErrors"
_WRITER_HINT = (
    "grant roles/logging.logWriter (permission logging.logEntries.create) on the project "
    "to the credentials in use"
)

# google.rpc.Code values, as they appear in per-entry errors.
_CODE_NAMES = {
    0: "OK",
    1: "CANCELLED",
    2: "UNKNOWN",
    3: "INVALID_ARGUMENT",
    4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND",
    6: "ALREADY_EXISTS",
    7: "PERMISSION_DENIED",
    8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION",
    10: "ABORTED",
    11: "OUT_OF_RANGE",
    12: "UNIMPLEMENTED",
    13: "INTERNAL",
    14: "UNAVAILABLE",
    15: "DATA_LOSS",
    16: "UNAUTHENTICATED",
}
# Worth sending the entry again: throttling, overload and timeouts on Google's side.
_TRANSIENT_CODES = frozenset({4, 8, 10, 13, 14})
# The entry is there already (an idempotent resend): counts as delivered.
_DONE_CODES = frozenset({0, 6})
_AUTH_CODES = frozenset({7, 16})
#: Event keys that take the general path: labels, httpRequest, trace or Error Reporting fields.
_GENERAL_KEYS = SPECIAL_KEYS | {"part"}
_TOKENISH = re.compile(r"(ya29\.[\w.\-]+|Bearer\s+\S+|access_token[\"'=:\s]+[\w.\-]+)", re.I)


def require_sdk() -> None:
    """Fail now, with the install line, if google-cloud-logging is missing (no import done)."""
    try:
        found = importlib.util.find_spec("google.cloud.logging") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise ImportError(
            f"Shipping to Google Cloud Logging needs google-cloud-logging: {_SDK_HINT}"
        )


def _redact(text: str, limit: int = 300) -> str:
    """A service message fit for a diagnostic: one line, bounded, nothing token-like."""
    text = _TOKENISH.sub("<redacted>", " ".join(str(text).split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _string_map(key: str, value: Any) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise ConfigError(
            key, f"got {type(value).__name__}", "give a mapping of strings to strings"
        )
    bad = [k for k, v in value.items() if not isinstance(k, str) or not isinstance(v, str) or not k]
    if bad:
        raise ConfigError(
            key, f"entry {bad[0]!r} is not a non-empty string key with a string value",
            "give a mapping of strings to strings (quote numbers in YAML)",
        )
    return tuple(sorted(value.items()))


def _clean_endpoint(key: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(key, f"got {type(value).__name__}", "give a URL such as http://127.0.0.1:8080")
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(key, f"got {value!r}", "give a URL such as http://127.0.0.1:8080")
    return value.strip().rstrip("/")


def _public_url(url: str) -> str:
    """The URL without any user:password part, for messages."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@dataclass(frozen=True)
class GcpTarget:
    """Where entries go and what they carry besides the event; validated, hashable (a worker key).

    Build it with :meth:`of`, which checks every value and raises :class:`ConfigError` naming
    the key.
    """

    project: str | None
    log_name: str
    labels: tuple[tuple[str, str], ...]
    resource_type: str
    resource_labels: tuple[tuple[str, str], ...]
    api_endpoint: str | None

    @classmethod
    def of(
        cls,
        project: str | None = None,
        log_name: str = "dagster",
        labels: Mapping[str, str] | None = None,
        resource_type: str = "global",
        resource_labels: Mapping[str, str] | None = None,
        api_endpoint: str | None = None,
    ) -> GcpTarget:
        if project is not None and (
            not isinstance(project, str) or not _PROJECT_RE.match(project)
        ):
            raise ConfigError(
                "project", f"got {project!r}",
                "give a project ID such as my-project (or leave it unset to use the one of the "
                "environment's credentials)",
            )
        if not isinstance(log_name, str) or not _LOG_NAME_RE.match(log_name):
            raise ConfigError(
                "log_name", f"got {log_name!r}",
                "use 1-511 characters of letters, digits, '/', '_', '-' and '.'",
            )
        user_labels = _string_map("labels", labels)
        if len(user_labels) > _MAX_USER_LABELS:
            raise ConfigError(
                "labels", f"{len(user_labels)} labels",
                f"use at most {_MAX_USER_LABELS} (an entry holds 64 labels; run_id, job_name "
                "and step_key take 3)",
            )
        for k, v in user_labels:
            if len(k.encode()) > _MAX_LABEL_KEY_BYTES or len(v.encode()) > _MAX_LABEL_VALUE_BYTES:
                raise ConfigError(
                    "labels", f"label {k[:40]!r} is too long",
                    "keep keys within 512 bytes and values within 64 KiB",
                )
        if not isinstance(resource_type, str) or not _RESOURCE_TYPE_RE.match(resource_type):
            raise ConfigError(
                "resource_type", f"got {resource_type!r}",
                "use a monitored resource type such as global, k8s_container or generic_task",
            )
        return cls(
            project=project,
            log_name=log_name,
            labels=user_labels,
            resource_type=resource_type,
            resource_labels=_string_map("resource_labels", resource_labels),
            api_endpoint=_clean_endpoint("api_endpoint", api_endpoint),
        )

    def log_path(self, project: str) -> str:
        """``projects/{project}/logs/{log_name}``, the log name URL-encoded as the API wants."""
        return f"projects/{project}/logs/{quote(self.log_name, safe='')}"

    def resource(self, project: str) -> dict[str, Any]:
        labels = dict(self.resource_labels)
        if self.resource_type == "global" and not labels:
            labels = {"project_id": project}  # what the service and Google's client fill in
        return {"type": self.resource_type, "labels": labels}

    def describe(self) -> str:
        """Human readable, for diagnostics and spill lines: never holds credentials."""
        project = self.project or "<project of the environment's credentials>"
        where = f"Cloud Logging projects/{project}/logs/{self.log_name}"
        if self.api_endpoint:
            where += f" at {_public_url(self.api_endpoint)}"
        return where


class _Deferred(NamedTuple):
    """The payload of an entry made at send time, once the project is known."""

    ids: tuple[str, Any, Any]


class GcpSink(Sink):
    """Writes batches of entries with ``entries.write`` and reads per-entry outcomes.

    Construction does no I/O: the SDK is imported, the project resolved (from the environment's
    credentials when not given) and the client built at the first send.
    """

    sdk_loggers = ("google", "urllib3", "requests", "grpc", "charset_normalizer")

    def __init__(self, target: GcpTarget) -> None:
        self.target = target
        self.destination = target.describe()
        label_bytes = len(json.dumps(dict(target.labels), ensure_ascii=False).encode())
        self.limits = SinkLimits(
            max_batch_events=BATCH_EVENTS,
            max_batch_bytes=BATCH_BYTES,
            max_event_bytes=max(64 * 1024, MAX_ENTRY_BYTES - ENTRY_MARGIN - label_bytes),
            per_event_overhead=ENTRY_OVERHEAD + label_bytes,
        )
        self._user_labels = dict(target.labels)
        self._fragments: dict[tuple[Any, ...], tuple[str, str]] = {}
        self._lock = threading.Lock()
        self._client: Any = None
        self._project: str | None = target.project
        self._principal: str | None = None
        self._setup_error: BatchRejectedError | None = None
        self._split_uid = ""

    # -- entries -----------------------------------------------------------------------------

    def payload(self, text: str, event: dict[str, Any] | None, snap: Snapshot) -> Any:
        """The ``LogEntry`` as UTF-8 JSON bytes, with its insertId fixed for every resend."""
        if event is None:
            entry = self._plain_entry(snap, text)
            if entry is not None:
                return entry
            event = build_event(snap)
        return self._entry(event, text)

    def _entry(self, item_event: dict[str, Any], text: str) -> Any:
        """The entry of a record whose schema event is at hand."""
        message_id = item_event.get("log_message_id")
        timestamp = item_event.get("timestamp")
        if (
            type(message_id) is str and message_id and type(timestamp) is str and timestamp
            and item_event.keys().isdisjoint(_GENERAL_KEYS)
        ):  # fmt: skip
            # The common Dagster record: its severity, labels and sourceLocation are those of
            # many records before it, encoded once (same JSON as the general path below).
            source = item_event.get("source")
            try:
                key = (
                    item_event.get("level"), item_event.get("run_id"), item_event.get("job_name"),
                    item_event.get("step_key"),
                    tuple(source.items()) if isinstance(source, dict) else source,
                )  # fmt: skip
                fragment = self._fragments.get(key)
            except TypeError:  # unhashable values: the general path
                fragment = key = None
            if key is not None:
                if fragment is None:
                    fragment = self._fragment_of(key, item_event)
                try:
                    return (
                        '{"insertId":' + encode_basestring(message_id) + fragment[0]
                        + encode_basestring(timestamp) + fragment[1] + text + "}"
                    ).encode("utf-8")
                except UnicodeEncodeError:  # a lone surrogate: the general path replaces it
                    pass
        project = self._project
        if project is None and needs_project(item_event):
            # A trace path names the project, known once the first send resolved it: the
            # entry is made then, from the text, with the insertId fixed now, so that every
            # resend of it collapses with the first (see _entry_bytes).
            return _Deferred(self._ids(item_event))
        return self._payload(item_event, text, project)

    def _plain_entry(self, snap: Snapshot, text: str) -> Any:
        """The common Dagster record's entry straight from its snapshot: the same bytes as
        :meth:`_entry` writes, without building the event dict (~2 us a record); None for a
        record that needs the general path."""
        message_id = snap[LOG_MESSAGE_ID]
        if not snap[HAS_META] or type(message_id) is not str or not message_id:
            return None  # no id of its own: a random insertId, made by the general path
        key = (snap[LEVEL], snap[RUN_ID], snap[JOB_NAME], snap[STEP_KEY], None)
        fragment = self._fragments.get(key)
        if fragment is None:
            fragment = self._fragment_of(key, build_event(snap))
        try:
            return (
                '{"insertId":' + encode_basestring(message_id) + fragment[0] + '"'
                + rfc3339(snap[CREATED]) + '"' + fragment[1] + text + "}"
            ).encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: the general path replaces it
            return None

    def _fragment_of(self, key: tuple[Any, ...], item_event: dict[str, Any]) -> tuple[str, str]:
        """(after the insertId up to the timestamp, after the timestamp up to the payload) of
        the entries of records like ``item_event``, from the general path's own output."""
        probe = dict(item_event, log_message_id="-", timestamp="T")
        entry = self._payload(probe, "0").decode("utf-8")  # ...,"jsonPayload":0}
        head, _, rest = entry.partition(',"timestamp":"T"')
        fragment = (head[len('{"insertId":"-"') :] + ',"timestamp":', rest[:-2])
        if len(self._fragments) >= 1024:
            self._fragments.clear()
        self._fragments[key] = fragment
        return fragment

    def _ids(self, item_event: dict[str, Any]) -> tuple[str, Any, Any]:
        """(uid, part index, part count) of an entry: its insertId is ``uid`` or ``uid-index``."""
        part = item_event.get("part")
        index = count = None
        if isinstance(part, dict):
            index, count = part.get("index"), part.get("count")
        message_id = item_event.get("log_message_id")
        if isinstance(message_id, str) and message_id:
            uid = message_id
        elif index is not None:
            # Parts of one record are made one after the other: they share one uid.
            if index == 1 or not self._split_uid:
                self._split_uid = uuid.uuid4().hex
            uid = self._split_uid
        else:
            uid = uuid.uuid4().hex
        return uid, index, count

    def _payload(
        self,
        item_event: dict[str, Any],
        text: str,
        project: str | None = None,
        ids: tuple[str, Any, Any] | None = None,
    ) -> bytes:
        """The entry of any event: labels, httpRequest and trace fields from its extras, and
        the Error Reporting fields in its payload (see gcp_format.structure). ``project`` names
        trace paths (default: the sink's, once resolved); ``ids`` are :meth:`_ids` fixed
        earlier."""
        project = project or self._project
        uid, index, count = ids or self._ids(item_event)
        meta: dict[str, Any] = {
            "insertId": uid if index is None else f"{uid}-{index}",
            "severity": severity_of(item_event.get("level")),
        }
        if item_event.get("timestamp"):
            meta["timestamp"] = item_event["timestamp"]
        shaped = structure(item_event, self._user_labels, project)
        if shaped.labels:
            meta["labels"] = shaped.labels
        location = source_location_of(item_event)
        if location:
            meta["sourceLocation"] = location
        trace = shaped.trace
        if "trace" in trace:
            meta["trace"] = trace["trace"]
        if "spanId" in trace:
            meta["spanId"] = trace["spanId"]
        if "trace_sampled" in trace:
            meta["traceSampled"] = trace["trace_sampled"]
        if shaped.http_request:
            meta["httpRequest"] = shaped.http_request
        if isinstance(index, int) and isinstance(count, int):
            meta["split"] = {"uid": uid, "index": index - 1, "totalSplits": count}
        head, _ = encode(meta)  # never raises; odd characters become valid JSON
        body = payload_text(shaped, text, self.limits.max_event_bytes)
        entry = head[:-1] + ',"jsonPayload":' + body + "}"
        try:
            return entry.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate in the event's text
            return finish_text(entry)[0].encode("utf-8")

    # -- client ------------------------------------------------------------------------------

    def _connect(self) -> tuple[Any, str]:
        """The client and project, built on first use (may do network I/O: token, metadata)."""
        with self._lock:
            if self._setup_error is not None:
                raise self._setup_error
            if self._client is not None and self._project is not None:
                return self._client, self._project
            try:
                self._client, self._project = self._build()
            except BatchRejectedError as exc:
                # Missing SDK, credentials or project do not fix themselves within a process:
                # remember, rather than probing the metadata server for every batch.
                self._setup_error = exc
                raise
            return self._client, self._project

    def _build(self) -> tuple[Any, str]:
        try:
            import google.auth
            from google.auth import exceptions as auth_exceptions
            from google.auth.credentials import AnonymousCredentials
            from google.cloud.logging import Client
        except ImportError as exc:
            raise BatchRejectedError(
                "google-cloud-logging is not installed",
                diagnostic=f"google-cloud-logging is not installed ({exc}): {_SDK_HINT}",
            ) from exc
        target = self.target
        project = self._project
        credentials: Any = None
        if target.api_endpoint:
            credentials = AnonymousCredentials()  # type: ignore[no-untyped-call]
            if project is None:
                project = os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get("GCLOUD_PROJECT")
        if project is None or credentials is None:
            try:
                found, found_project = google.auth.default(scopes=list(Client.SCOPE))
            except auth_exceptions.DefaultCredentialsError as exc:
                if credentials is None:
                    raise BatchRejectedError(
                        "no Google credentials",
                        diagnostic=(
                            "no Google credentials found (Application Default Credentials: "
                            f"{_redact(str(exc), 200)}). Run `gcloud auth application-default "
                            "login`, set GOOGLE_APPLICATION_CREDENTIALS, or run on Google Cloud "
                            "with a service account; for a local server set api_endpoint"
                        ),
                    ) from exc
                found, found_project = None, None
            if credentials is None:
                credentials = found
            project = project or found_project
        if not project:
            raise BatchRejectedError(
                "no Google Cloud project",
                diagnostic=(
                    "no Google Cloud project: set `project` in the logger config (or "
                    "GOOGLE_CLOUD_PROJECT); the environment's credentials name none"
                ),
            )
        self._principal = getattr(credentials, "service_account_email", None)
        options = {"api_endpoint": target.api_endpoint} if target.api_endpoint else None
        client = Client(  # type: ignore[no-untyped-call]
            project=project, credentials=credentials, _use_grpc=False, client_options=options
        )
        quiet_loggers(self.sdk_loggers)  # before the first request (see shipping.recursion)
        return client, project

    def _drop_client(self, close: bool) -> None:
        with self._lock:
            client, self._client = self._client, None
            self._project = self.target.project
            self._setup_error = None
        if close and client is not None:
            with contextlib.suppress(Exception):
                client.close()

    def close(self) -> None:
        self._drop_client(close=True)

    def after_fork(self) -> None:
        # The parent's session and its sockets stay the parent's: build a new client lazily.
        self._lock = threading.Lock()
        self._drop_client(close=False)

    # -- sending -----------------------------------------------------------------------------

    def _body(self, items: Sequence[ItemTuple], project: str) -> bytes:
        target = self.target
        head = json.dumps(
            {
                "logName": target.log_path(project),
                "resource": target.resource(project),
                "partialSuccess": True,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )
        # Head and tail folded into the first and last entry: the megabyte is made once, not
        # once more per `+` (each copy came from fresh pages with glibc's defaults; see
        # CloudWatchSink._request_body).
        entries = [self._entry_bytes(item, project) for item in items]
        prefix = head[:-1].encode("utf-8") + b',"entries":['
        if not entries:
            return prefix + b"]}"
        entries[0] = prefix + entries[0]
        entries[-1] += b"]}"
        return b",".join(entries)

    def _entry_bytes(self, item: ItemTuple, project: str) -> bytes:
        payload = item[PAYLOAD]
        if isinstance(payload, bytes):
            return payload
        # payload() failed (the core's fallback: the text) or waited for the project (a trace
        # path names it). Build the entry now, with the project resolved.
        ids = payload.ids if isinstance(payload, _Deferred) else None
        return self._payload(event_of(item[TEXT]), item[TEXT], project, ids)

    def send(self, items: Sequence[ItemTuple]) -> SendResult | None:
        client, project = self._connect()
        body = self._body(items, project)
        try:
            from google.api_core import exceptions as api_exceptions
            from google.auth import exceptions as auth_exceptions
            from requests import exceptions as http_exceptions
        except ImportError as exc:  # pragma: no cover - _connect imported the SDK already
            raise BatchRejectedError(f"google-cloud-logging import failed: {exc}") from exc
        where = _public_url(self.target.api_endpoint or "https://logging.googleapis.com")
        try:
            client.logging_api.api_request(
                method="POST",
                path="/entries:write",
                data=body,
                content_type="application/json",
                expect_json=False,
                timeout=HTTP_TIMEOUT,
            )
        except api_exceptions.GoogleAPICallError as exc:
            return self._answer(exc, len(items))
        except auth_exceptions.RefreshError as exc:
            if getattr(exc, "retryable", False):
                raise RetryableError(f"token refresh failed: {_redact(str(exc))}") from exc
            raise BatchRejectedError(
                "credentials refused",
                diagnostic=(
                    "the Google credentials were refused when fetching an access token "
                    f"({_redact(str(exc), 200)}); check GOOGLE_APPLICATION_CREDENTIALS or run "
                    "`gcloud auth application-default login`"
                ),
            ) from exc
        except (
            auth_exceptions.TransportError,
            http_exceptions.ConnectionError,
            http_exceptions.Timeout,
            http_exceptions.ChunkedEncodingError,
        ) as exc:
            raise RetryableError(f"{type(exc).__name__} talking to {where}") from exc
        except auth_exceptions.GoogleAuthError as exc:
            if self.target.api_endpoint:
                # The session answers a 401 by refreshing the token, which anonymous
                # credentials cannot do: the server wants credentials we never send it.
                raise BatchRejectedError(
                    "UNAUTHENTICATED",
                    diagnostic=(
                        f"UNAUTHENTICATED: {where} refused an anonymous request (HTTP 401); "
                        "with api_endpoint set no credentials are sent, so the server must "
                        "accept requests without them"
                    ),
                ) from exc
            raise BatchRejectedError(
                "credentials unusable",
                diagnostic=(
                    f"the Google credentials cannot be used ({type(exc).__name__}: "
                    f"{_redact(str(exc), 200)}); check GOOGLE_APPLICATION_CREDENTIALS or run "
                    "`gcloud auth application-default login`"
                ),
            ) from exc
        except http_exceptions.RequestException as exc:
            raise BatchRejectedError(
                f"request failed: {type(exc).__name__}",
                diagnostic=f"cannot send to {where}: {_redact(str(exc))}",
            ) from exc
        return None

    # -- reading answers ---------------------------------------------------------------------

    def _answer(self, exc: Any, count: int) -> SendResult:
        """Classify a non-2xx answer: per-entry outcomes when the service gave them."""
        status, message = _status_of(exc)
        code = getattr(exc, "code", None)
        http = code if isinstance(code, int) else 0
        errors = _entry_errors(getattr(exc, "details", None) or (), count)
        if errors:
            retry: list[int] = []
            rejected: list[tuple[int, str]] = []
            denied = 0
            for index, (rpc, text) in sorted(errors.items()):
                if rpc in _DONE_CODES:
                    continue
                if rpc in _TRANSIENT_CODES:
                    retry.append(index)
                else:
                    denied += rpc in _AUTH_CODES
                    rejected.append((index, f"{_CODE_NAMES.get(rpc, rpc)}: {_redact(text)}"))
            if denied and denied == count:
                raise self._auth_error(http if http in (401, 403) else 403, message)
            return SendResult(rejected=rejected, retry=retry)
        if http in (408, 429) or http >= 500:
            raise RetryableError(
                f"HTTP {http} {status}: {_redact(message, 200)}",
                retry_after=_retry_after(getattr(exc, "response", None)),
            )
        if http in (401, 403):
            raise self._auth_error(http, message)
        raise BatchRejectedError(
            f"HTTP {http} {status}: {_redact(message, 200)}",
            diagnostic=f"entries.write refused a request: HTTP {http} {status}: {_redact(message)}",
        )

    def _auth_error(self, http: int, message: str) -> BatchRejectedError:
        who = f" ({self._principal})" if self._principal else ""
        if http == 401:
            return BatchRejectedError(
                "UNAUTHENTICATED",
                diagnostic=(
                    f"UNAUTHENTICATED: the credentials{who} were not accepted "
                    f"({_redact(message, 200)}); check GOOGLE_APPLICATION_CREDENTIALS or "
                    "`gcloud auth application-default login`, then " + _WRITER_HINT
                ),
            )
        return BatchRejectedError(
            "PERMISSION_DENIED",
            diagnostic=(
                f"PERMISSION_DENIED writing to projects/{self._project}: {_WRITER_HINT}{who} "
                f"({_redact(message, 200)})"
            ),
        )


def _status_of(exc: Any) -> tuple[str, str]:
    """(google.rpc status name, message) of an error answer."""
    status, message = "", ""
    response = getattr(exc, "response", None)
    try:
        error = response.json().get("error", {}) if response is not None else {}
        if isinstance(error, dict):
            status = str(error.get("status") or "")
            message = str(error.get("message") or "")
    except Exception:
        pass
    if not status:
        grpc_code = getattr(exc, "grpc_status_code", None)
        status = getattr(grpc_code, "name", "") or ""
    return status or "UNKNOWN", message or str(getattr(exc, "message", "") or "")


def _entry_errors(details: Sequence[Any], count: int) -> dict[int, tuple[int, str]]:
    """``logEntryErrors`` of a ``WriteLogEntriesPartialErrors`` detail: index → (code, message)."""
    out: dict[int, tuple[int, str]] = {}
    for detail in details:
        if not isinstance(detail, dict) or detail.get("@type") != _PARTIAL_ERRORS_TYPE:
            continue
        errors = detail.get("logEntryErrors")
        if not isinstance(errors, dict):
            continue
        for key, status in errors.items():
            try:
                index = int(key)
            except (TypeError, ValueError):
                continue
            if not 0 <= index < count or not isinstance(status, dict):
                continue
            code = status.get("code", 2)
            out[index] = (
                code if isinstance(code, int) else 2,
                str(status.get("message", "")),
            )
    return out


def _retry_after(response: Any) -> float | None:
    """The server's ``Retry-After`` in seconds (numeric form only), capped at a minute."""
    try:
        value = response.headers.get("Retry-After") if response is not None else None
        if value is None:
            return None
        seconds = float(value)
    except (AttributeError, TypeError, ValueError):
        return None
    return min(max(seconds, 0.0), 60.0) if seconds == seconds else None
