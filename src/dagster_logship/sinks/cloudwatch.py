"""CloudWatch Logs: the rules of ``PutLogEvents`` and the life of a log group and stream.

The worker hands this sink batches that already obey :attr:`CloudWatchSink.limits` (count, bytes
as CloudWatch counts them, span); the sink sorts them, sends them with one ``PutLogEvents`` call,
reads ``rejectedLogEventsInfo`` and classifies every failure for the shared retry policy. It never
sleeps or retries by itself, and it keeps botocore's own retries off so they do not multiply ours.

boto3 is imported only when the client is built (on the first batch, on the worker thread), so
building a handler needs neither boto3 nor the network.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import re
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from json.encoder import encode_basestring_ascii
from typing import Any, Literal

from ..shipping.options import ConfigError
from ..shipping.recursion import quiet_loggers
from ..shipping.retry import BatchRejectedError, RetryableError, ShippingError
from ..shipping.sink import TEXT, TIMESTAMP, ItemTuple, SendResult, Sink, SinkLimits
from ..shipping.spill import diagnostic
from .endpoint_pin import active_moto_mock, pin_mismatch

__all__ = [
    "INSTALL_HINT",
    "MAX_BATCH_BYTES",
    "MAX_BATCH_EVENTS",
    "MAX_EVENT_BYTES",
    "MAX_SPAN_SECONDS",
    "PER_EVENT_OVERHEAD",
    "RETENTION_DAYS",
    "CloudWatchSink",
    "DestinationCheckError",
    "credentials_fingerprint",
    "rejection_reasons",
    "validate_log_group_name",
    "validate_log_stream_name",
    "validate_retention",
    "validate_tags",
]

INSTALL_HINT = "boto3 is not installed: pip install 'dagster-logship[aws]'"

#: PutLogEvents: at most 10,000 events per request.
MAX_BATCH_EVENTS = 10_000
#: PutLogEvents: a request is at most 1,048,576 bytes, counted as the UTF-8 bytes of every message
#: plus 26 bytes per event (timestamps and JSON framing are not counted).
MAX_BATCH_BYTES = 1_048_576
PER_EVENT_OVERHEAD = 26
#: One event may be "no larger than 1 MB" since April 2025 (256 KB before). The API reference
#: counts that 1 MB like the batch (message bytes + 26), and a lone event must still fit a batch,
#: so the largest message that can ever be accepted is 1,048,576 - 26 = 1,048,550 bytes. Using
#: exactly that figure means the core splits only what CloudWatch would certainly refuse.
MAX_EVENT_BYTES = MAX_BATCH_BYTES - PER_EVENT_OVERHEAD
#: Valid events of one request may span at most 24 h. Timestamps are sent in whole milliseconds
#: (see _millis), so the span the service sees can differ from ours by up to 1 ms; a minute of
#: margin keeps us clear of the edge without splitting any realistic batch.
MAX_SPAN_SECONDS = 24 * 3600 - 60

#: The only values PutRetentionPolicy accepts.
RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
)

_GROUP_RE = re.compile(r"[A-Za-z0-9._/#-]{1,512}")
_MAX_NAME = 512

# Error codes, by what the worker must do with them.
_RETRY_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ServiceUnavailableException",
        "ServiceUnavailable",
        "InternalFailure",
        "InternalServerError",
        "InternalError",
        "RequestTimeout",
        "RequestTimeoutException",
        "InvalidSequenceTokenException",  # ignored by the service since 2023; harmless to retry
        "OperationAbortedException",  # a concurrent create/delete of the same resource
    }
)
_ACCESS_CODES = frozenset(
    {"AccessDeniedException", "AccessDenied", "UnauthorizedOperation", "AuthorizationError"}
)
_CREDENTIAL_CODES = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "InvalidClientTokenId",
        "ExpiredTokenException",
        "ExpiredToken",
        "MissingAuthenticationTokenException",
        "MissingAuthenticationToken",
        "InvalidAccessKeyId",
        "RequestExpired",
    }
)
_PERMISSIONS = {
    "PutLogEvents": "logs:PutLogEvents",
    "CreateLogGroup": "logs:CreateLogGroup",
    "CreateLogStream": "logs:CreateLogStream",
    "PutRetentionPolicy": "logs:PutRetentionPolicy",
    "DescribeLogGroups": "logs:DescribeLogGroups",
    "DescribeLogStreams": "logs:DescribeLogStreams",
}


# -- validation (shared with the handler, so a bad value fails when the handler is built) --------


def validate_log_group_name(name: Any, key: str = "log_group_name") -> str:
    """CloudWatch's rule for group names: 1-512 of ``[A-Za-z0-9._/#-]``, not starting ``aws/``."""
    if not isinstance(name, str) or not _GROUP_RE.fullmatch(name):
        raise ConfigError(
            key,
            f"got {name!r}; a log group name is 1-512 characters of A-Z a-z 0-9 . _ / # -",
            "use only those characters, e.g. /dagster/prod",
        )
    if name.startswith("aws/"):
        raise ConfigError(
            key,
            f"got {name!r}; names starting with 'aws/' are reserved by AWS",
            "pick another name",
        )
    return name


def validate_log_stream_name(name: Any, key: str = "log_stream_name") -> str:
    """CloudWatch's rule for stream names: 1-512 characters, no ``:`` and no ``*``."""
    if not isinstance(name, str) or not 1 <= len(name) <= _MAX_NAME:
        raise ConfigError(
            key, f"got {name!r}; a log stream name is 1-512 characters", "give a shorter name"
        )
    if ":" in name or "*" in name:
        raise ConfigError(
            key, f"got {name!r}; a log stream name may not contain ':' or '*'", "remove them"
        )
    return name


def validate_retention(value: Any, key: str = "retention_in_days") -> int | None:
    """None (keep the service default: never expire) or one of :data:`RETENTION_DAYS`."""
    if value is None:
        return None
    days: Any = value
    if isinstance(value, str) and value.strip().isdigit():
        days = int(value.strip())
    if isinstance(days, bool) or not isinstance(days, int) or days not in RETENTION_DAYS:
        raise ConfigError(
            key,
            f"got {value!r}; CloudWatch accepts only {', '.join(map(str, RETENTION_DAYS))} days",
            "pick one of those values, or leave it unset to keep events forever",
        )
    return days


def validate_tags(tags: Any, key: str = "tags") -> dict[str, str] | None:
    """Tags for a new log group: at most 50; keys 1-128 and values 0-256 characters."""
    if tags is None:
        return None
    if not isinstance(tags, Mapping):
        raise ConfigError(key, f"got {type(tags).__name__}", "give a mapping of strings to strings")
    if len(tags) > 50:
        raise ConfigError(key, f"got {len(tags)} tags; at most 50 are allowed", "use fewer tags")
    out: dict[str, str] = {}
    for tag, value in tags.items():
        if not isinstance(tag, str) or not 1 <= len(tag) <= 128 or tag.lower().startswith("aws:"):
            raise ConfigError(
                key,
                f"tag key {tag!r} is invalid (1-128 characters, not starting with 'aws:')",
                "rename the tag",
            )
        if not isinstance(value, str) or len(value) > 256:
            raise ConfigError(
                key, f"the value of tag {tag!r} must be a string of at most 256 characters",
                "shorten or quote it",
            )
        out[tag] = value
    return out


def credentials_fingerprint(*secrets: str | None) -> str:
    """A short sha256 of explicit credentials: tells destinations apart without holding secrets."""
    if not any(secrets):
        return "ambient"
    digest = hashlib.sha256("\0".join(s or "" for s in secrets).encode("utf-8")).hexdigest()
    return digest[:16]


# -- the sink --------------------------------------------------------------------------------------


_loader_lock = threading.Lock()
_shared_loader: Any = None


def _botocore_session(profile: str | None) -> Any:
    """A new botocore session that reuses this process's botocore data loader.

    Why: a new session reads and parses botocore's endpoint and service JSON files again, which
    cost 65-100 ms per client idle and about 0.6 s under a busy Dagster run (benchmarks/), and
    Dagster builds new loggers, hence new sinks, for every run. The loader only caches those
    read-only files; credentials, profile and region are still resolved per session, as before.
    (A botocore session, not boto3's: boto3's adds a search path to the loader every time.)
    """
    import botocore.session

    global _shared_loader
    session = botocore.session.Session(profile=profile)
    with _loader_lock:
        if _shared_loader is None:
            _shared_loader = session.get_component("data_loader")
        else:
            session.register_component("data_loader", _shared_loader)
    return session


def _reset_loader_lock() -> None:  # a fork may happen while another thread holds it
    global _loader_lock
    _loader_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_loader_lock)


#: ``moto_mock`` default: whatever mock is active when the sink is built.
_NOW: Any = object()


class CloudWatchSink(Sink):
    """One log stream of one log group, through one boto3 client built on first use."""

    sdk_loggers = ("botocore", "boto3", "urllib3", "s3transfer")
    #: Which column of an item is the event's message: the schema event's text (a subclass may
    #: send its payload instead, see sinks/dagster_aws_format.py).
    _message_column: Literal[0, 1] = TEXT
    limits = SinkLimits(
        max_batch_events=MAX_BATCH_EVENTS,
        max_batch_bytes=MAX_BATCH_BYTES,
        max_event_bytes=MAX_EVENT_BYTES,
        per_event_overhead=PER_EVENT_OVERHEAD,
        max_span_seconds=MAX_SPAN_SECONDS,
    )

    def __init__(
        self,
        log_group_name: str,
        log_stream_name: str,
        *,
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
        connect_timeout: float = 5.0,
        read_timeout: float = 20.0,
        moto_mock: Any = _NOW,
    ) -> None:
        self.log_group_name = validate_log_group_name(log_group_name)
        self.log_stream_name = validate_log_stream_name(log_stream_name)
        self.aws_region = aws_region
        self.aws_profile = aws_profile
        self.endpoint_url = endpoint_url
        self.create_log_group = bool(create_log_group)
        self.create_log_stream = bool(create_log_stream)
        self.retention_in_days = validate_retention(retention_in_days)
        self.tags = validate_tags(tags)
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        # Held only to build the client; never shown (see __repr__ and _scrub).
        self._access_key_id = aws_access_key_id
        self._secret_access_key = aws_secret_access_key
        self._session_token = aws_session_token
        where = f" via {endpoint_url}" if endpoint_url else ""
        self.destination = (
            f"cloudwatch-logs {aws_region or 'default-region'} "
            f"{self.log_group_name} {self.log_stream_name}{where}"
        )
        self._client: Any = None
        self._client_lock = threading.Lock()
        # The moto mock this destination was built in, or None (see endpoint_pin.py); a handler
        # passes the one of its own construction, since it builds the sink later.
        self._moto_mock = active_moto_mock() if moto_mock is _NOW else moto_mock
        # The PutLogEvents body we write, handed to botocore's hook (see _request_body).
        self._prepared = threading.local()
        self._own_body = True
        self._body_head: str | None = None
        self._retention_pending = False
        self._said: set[str] = set()

    def __repr__(self) -> str:
        return f"<CloudWatchSink {self.destination}>"

    # -- client ---------------------------------------------------------------------------------

    def client(self) -> Any:
        """The boto3 ``logs`` client, built on first use (no network call is made to build it).

        botocore's retries are limited to the first attempt and its timeouts kept modest: the
        shared retry policy decides about retries, with its deadline and the process exit in view.
        """
        mismatch = pin_mismatch(self._moto_mock)
        if mismatch is not None:
            raise BatchRejectedError(mismatch, diagnostic=f"{self.destination}: {mismatch}")
        with self._client_lock:
            if self._client is None:
                self._client = self._build_client()
            return self._client

    def _build_client(self) -> Any:
        try:
            import boto3  # noqa: F401 - the [aws] extra; botocore comes with it
            from botocore.config import Config
        except ImportError as exc:
            raise BatchRejectedError(INSTALL_HINT, diagnostic=INSTALL_HINT) from exc
        try:
            client = _botocore_session(self.aws_profile).create_client(
                "logs",
                region_name=self.aws_region,
                endpoint_url=self.endpoint_url,
                aws_access_key_id=self._access_key_id,
                aws_secret_access_key=self._secret_access_key,
                aws_session_token=self._session_token,
                config=Config(
                    retries={"total_max_attempts": 1, "mode": "standard"},
                    connect_timeout=self.connect_timeout,
                    read_timeout=self.read_timeout,
                    user_agent_extra="dagster-logship",
                    # We build every request ourselves within the API's rules; botocore's
                    # client-side check of it cost 3 us per event (benchmarks/). The service
                    # still validates, and its InvalidParameterException is handled.
                    parameter_validation=False,
                ),
            )
        except Exception as exc:
            raise self._classify(exc, "PutLogEvents") from None
        quiet_loggers(self.sdk_loggers)  # before the first request: botocore logs headers
        with contextlib.suppress(Exception):
            client.meta.events.register_first(  # before handlers that answer (Stubber)
                "before-call.*.*", self._use_prepared_body
            )
        return client

    def close(self) -> None:
        with self._client_lock:
            client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

    def after_fork(self) -> None:
        # The parent's connection pool must not be shared: drop it unclosed, build anew on use.
        self._client = None
        self._client_lock = threading.Lock()

    # -- sending --------------------------------------------------------------------------------

    def send(self, items: Sequence[ItemTuple]) -> SendResult | None:
        """One PutLogEvents call for ``items`` (sorted by timestamp; rejections mapped back)."""
        # An item's timestamp is record.created (float seconds); CloudWatch wants integer
        # milliseconds. The request is built here: payload() does not see record.created.
        stamps = [_millis(item[TIMESTAMP]) for item in items]
        column = self._message_column
        if stamps == sorted(stamps):  # the usual case, found in one pass: records in order
            order: Sequence[int] = range(len(items))
            events = list(zip(stamps, [item[column] for item in items], strict=True))
        else:
            order = sorted(range(len(items)), key=stamps.__getitem__)  # stable: ties keep seq
            events = [(stamps[i], items[i][column]) for i in order]
        client = self.client()
        if self._retention_pending:
            self._apply_retention(client)
        response = self._put(client, events)
        info = response.get("rejectedLogEventsInfo") if isinstance(response, dict) else None
        if not info:
            return None
        rejected = [
            (order[pos], reason)
            for pos, reason in enumerate(rejection_reasons(info, len(events)))
            if reason is not None
        ]
        return SendResult(rejected=rejected) if rejected else None

    def _put(self, client: Any, events: list[tuple[int, str]]) -> Any:
        try:
            return self._put_once(client, events)
        except Exception as exc:
            if _code_of(exc) == "DataAlreadyAcceptedException":
                return {}
            if _code_of(exc) != "ResourceNotFoundException":
                raise self._classify(exc, "PutLogEvents") from None
        # The group or the stream is missing (first use, or deleted while we run): create what
        # we may, then send once more. A second "not found" right after creating is treated as
        # transient (the retry comes back here and creates again).
        self._ensure_destination(client)
        try:
            return self._put_once(client, events)
        except Exception as exc:
            if _code_of(exc) == "ResourceNotFoundException":
                raise RetryableError(
                    f"{self.log_group_name}/{self.log_stream_name} not found after creating it"
                ) from None
            raise self._classify(exc, "PutLogEvents") from None

    def _put_once(self, client: Any, events: list[tuple[int, str]]) -> Any:
        """One PutLogEvents call with a request body we wrote (see :meth:`_request_body`)."""
        prepared = self._prepared
        if self._own_body:
            prepared.body, prepared.used = self._request_body(events), False
            try:
                response = client.put_log_events(
                    logGroupName=self.log_group_name, logStreamName=self.log_stream_name,
                    logEvents=[],
                )
            except Exception:
                if prepared.used:
                    raise
                response = None
            finally:
                prepared.body = None
            if prepared.used:
                return response
            # botocore did not call our hook (a version that emits other events?): what went
            # out held no events. Send these through its own serializer, now and from now on.
            self._own_body = False
            diagnostic(
                f"{self.destination}: botocore did not take the prepared PutLogEvents body; "
                "using its own serializer (slower)"
            )
        return client.put_log_events(
            logGroupName=self.log_group_name,
            logStreamName=self.log_stream_name,
            logEvents=[{"timestamp": stamp, "message": text} for stamp, text in events],
        )

    def _request_body(self, events: list[tuple[int, str]]) -> bytes:
        """The JSON body of PutLogEvents, written here rather than by botocore's serializer.

        Why: botocore walks the request model for every event, 3.4 us each, a tenth of the
        worker's time per record, where formatting each event with the C string encoder takes
        1.2 us (benchmarks/). Same JSON as botocore's ``json.dumps`` (ASCII, escapes alike);
        botocore still signs, sends and parses the answer. A test compares the two.
        """
        head = self._body_head
        if head is None:
            head = self._body_head = (
                '{"logGroupName":' + encode_basestring_ascii(self.log_group_name)
                + ',"logStreamName":' + encode_basestring_ascii(self.log_stream_name)
                + ',"logEvents":['
            )
        if not events:
            return (head + "]}").encode("ascii")
        # b'{"timestamp":S,"message":M},{"timestamp":...' joined from the two columns, head and
        # tail folded into the first and last piece, made bytes piece by piece: no formatted
        # string per event, and one megabyte-sized object instead of four (a joined str, the
        # str with head and tail, its bytes). With glibc's default settings each of those came
        # from fresh pages, trimmed back after every request: 1.3 -> 0.8 us per event in a
        # thread of the logging process (benchmarks/README.md).
        stamps = [str(stamp).encode("ascii") for stamp, _ in events]
        messages = [encode_basestring_ascii(text).encode("ascii") for _, text in events]
        stamps[0] = (head + '{"timestamp":').encode("ascii") + stamps[0]
        messages[-1] += b"}]}"
        return b'},{"timestamp":'.join(
            map(b',"message":'.join, zip(stamps, messages, strict=True))
        )

    def _use_prepared_body(self, model: Any = None, params: Any = None, **kwargs: Any) -> None:
        """botocore's ``before-call`` hook: put the body written by :meth:`_request_body` in
        place of the one it serialized (an empty event list). Signing happens after this.
        Registered first for every operation (handlers of ``before-call.*.*`` that answer a
        call, such as botocore's Stubber, run after it), acting on PutLogEvents only."""
        body = getattr(self._prepared, "body", None)
        if (
            body is not None
            and getattr(model, "name", None) == "PutLogEvents"
            and isinstance(params, dict)
            and "body" in params
        ):
            params["body"] = body
            self._prepared.used = True

    def _ensure_destination(self, client: Any) -> None:
        """Create the stream (and the group when that is what is missing). Idempotent."""
        if not self.create_log_stream:
            raise BatchRejectedError(
                "log group or stream not found",
                diagnostic=(
                    f"log group {self.log_group_name!r} or log stream {self.log_stream_name!r} "
                    "does not exist and create_log_stream is false: create them, or set "
                    "create_log_stream (and create_log_group) to true"
                ),
            )
        # Try the stream first: in the usual case (a new stream per run) the group exists and one
        # call is enough.
        try:
            self._create_stream(client)
            return
        except _GroupMissing:
            pass
        if not self.create_log_group:
            raise BatchRejectedError(
                "log group not found",
                diagnostic=(
                    f"log group {self.log_group_name!r} does not exist and create_log_group is "
                    "false: create it, or set create_log_group to true"
                ),
            )
        self._create_group(client)
        try:
            self._create_stream(client)
        except _GroupMissing:
            raise RetryableError(
                f"log group {self.log_group_name} not found right after creating it"
            ) from None

    def _create_stream(self, client: Any) -> None:
        try:
            client.create_log_stream(
                logGroupName=self.log_group_name, logStreamName=self.log_stream_name
            )
        except Exception as exc:
            code = _code_of(exc)
            if code == "ResourceAlreadyExistsException":
                return
            if code == "ResourceNotFoundException":
                raise _GroupMissing from None
            raise self._classify(exc, "CreateLogStream") from None

    def _create_group(self, client: Any) -> None:
        kwargs: dict[str, Any] = {"logGroupName": self.log_group_name}
        if self.tags:
            kwargs["tags"] = dict(self.tags)
        try:
            client.create_log_group(**kwargs)
        except Exception as exc:
            if _code_of(exc) == "ResourceAlreadyExistsException":
                return  # someone else made it: its retention and tags are theirs
            raise self._classify(exc, "CreateLogGroup") from None
        if self.retention_in_days is not None:
            self._retention_pending = True
            self._apply_retention(client)

    def _apply_retention(self, client: Any) -> None:
        """Set retention on a group we created. Never fails a batch: events matter more."""
        try:
            client.put_retention_policy(
                logGroupName=self.log_group_name, retentionInDays=self.retention_in_days
            )
            self._retention_pending = False
        except Exception as exc:
            error = self._classify(exc, "PutRetentionPolicy")
            if isinstance(error, RetryableError):
                return  # try again before the next batch
            self._retention_pending = False
            line = error.diagnostic if isinstance(error, BatchRejectedError) else None
            self._say_once(
                f"{self.destination}: retention_in_days={self.retention_in_days} not applied: "
                f"{line or error}"
            )

    # -- fail_fast ------------------------------------------------------------------------------

    def check_destination(self, attempts: int = 3) -> None:
        """``fail_fast``: check, once when a logger is built, that the region and credentials
        work and the log group exists (and the stream, when we may not create it).

        DescribeLogGroups / DescribeLogStreams with the name as prefix, as dagster-aws's handler
        does at init; never per batch (DescribeLogStreams allows 25 calls a second per account).
        Throttling and other transient failures are tried ``attempts`` times. Raises
        :class:`DestinationCheckError` saying what is wrong and how to fix it.
        """
        for attempt in range(attempts):
            try:
                self._check_destination_once()
                return
            except RetryableError as exc:
                if attempt + 1 >= attempts:
                    raise DestinationCheckError(
                        f"{_INIT_FAILED}: could not check log group {self.log_group_name!r} "
                        f"{self._where()}: {self._scrub(str(exc))}. Fix: retry later, or set "
                        "fail_fast: false to start without this check"
                    ) from None
                time.sleep(0.2 * 2**attempt)

    def _where(self) -> str:
        client = self._client
        region = getattr(getattr(client, "meta", None), "region_name", None) or self.aws_region
        where = f"in region {region or '(none set)'}"
        return where + (f" via endpoint {self.endpoint_url}" if self.endpoint_url else "")

    def _check_destination_once(self) -> None:
        try:
            client = self.client()
        except BatchRejectedError as exc:
            raise DestinationCheckError(
                f"{_INIT_FAILED}: {exc.diagnostic or exc}. Fix: that, or set fail_fast: false"
            ) from None
        if not self._find(client, "DescribeLogGroups", "logGroups", "logGroupName",
                          self.log_group_name, logGroupNamePrefix=self.log_group_name):
            region = getattr(client.meta, "region_name", None) or self.aws_region or "REGION"
            raise DestinationCheckError(
                f"{_INIT_FAILED}: Could not find log group with name {self.log_group_name} "
                f"{self._where()}. Fix: create it (aws logs create-log-group --log-group-name "
                f"{self.log_group_name} --region {region}), check aws_region, or set "
                "fail_fast: false to have it created on the first send (create_log_group: true, "
                "the default)"
            )
        if self.create_log_stream:
            return  # a missing stream is created on the first send (a per-run stream is new)
        if not self._find(client, "DescribeLogStreams", "logStreams", "logStreamName",
                          self.log_stream_name, logGroupName=self.log_group_name,
                          logStreamNamePrefix=self.log_stream_name):
            raise DestinationCheckError(
                f"{_INIT_FAILED}: Could not find log stream with name {self.log_stream_name} "
                f"in log group {self.log_group_name} {self._where()}. Fix: create it (aws logs "
                f"create-log-stream --log-group-name {self.log_group_name} --log-stream-name "
                f"{self.log_stream_name}), or set create_log_stream: true"
            )

    def _find(
        self, client: Any, operation: str, listing: str, field: str, name: str, **kwargs: Any
    ) -> bool:
        """Whether ``name`` is among the resources the paginated Describe call lists."""
        method = getattr(client, "describe_log_groups" if listing == "logGroups"
                         else "describe_log_streams")
        token = None
        for _ in range(_MAX_DESCRIBE_PAGES):
            try:
                page = method(**kwargs, **({"nextToken": token} if token else {}))
            except Exception as exc:
                error = self._classify(exc, operation)
                if isinstance(error, RetryableError):
                    raise error from None
                detail = error.diagnostic if isinstance(error, BatchRejectedError) else None
                raise DestinationCheckError(
                    f"{_INIT_FAILED}: {operation} for log group {self.log_group_name!r} "
                    f"{self._where()} failed: {detail or error}. Fix: that, or set fail_fast: "
                    "false to start without this check"
                ) from None
            if any(entry.get(field) == name for entry in page.get(listing) or ()):
                return True
            token = page.get("nextToken")
            if not token:
                return False
        return False

    def _say_once(self, line: str) -> None:
        if line not in self._said:
            self._said.add(line)
            diagnostic(line)

    # -- classification -------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        """Belt and braces: no credential ever leaves in an error text, whatever the service or
        botocore said (the access key id too: a service may echo it back)."""
        for secret in (self._secret_access_key, self._session_token, self._access_key_id):
            if secret:
                text = text.replace(secret, "***")
        return text

    def _classify(self, exc: BaseException, operation: str) -> ShippingError:
        """Map a boto3/botocore failure onto the shared policy: retry, or reject with one line."""
        permission = _PERMISSIONS.get(operation, "logs:*")
        target = f"log group {self.log_group_name!r}"
        code = _code_of(exc)
        if code is not None:
            meta = getattr(exc, "response", {}).get("ResponseMetadata", {})
            status = meta.get("HTTPStatusCode") or 0
            message = self._scrub(str(getattr(exc, "response", {}).get("Error", {}).get("Message")
                                      or code))
            what = f"{operation} failed: {code}: {message}"
            if code in _RETRY_CODES or status >= 500 or status == 429:
                return RetryableError(what, retry_after=_retry_after(meta))
            # A 403 with no error document (a proxy, a VPC endpoint policy, moto's IAM check)
            # reaches us as code "403": still a refusal of this identity, not of the request.
            if code in _ACCESS_CODES or (status == 403 and code not in _CREDENTIAL_CODES):
                return BatchRejectedError(
                    f"access denied ({operation})",
                    diagnostic=(
                        f"AccessDenied on {operation}: the AWS identity in use lacks the IAM "
                        f"permission {permission} on {target}; grant it"
                    ),
                )
            if code in _CREDENTIAL_CODES:
                return BatchRejectedError(
                    f"credentials rejected ({code})",
                    diagnostic=(
                        f"AWS rejected the credentials on {operation} ({code}): check "
                        "aws_access_key_id / aws_secret_access_key / aws_session_token, "
                        "aws_profile or the environment, and that the identity has "
                        f"{permission} on {target}"
                    ),
                )
            if code == "InvalidParameterException":
                return BatchRejectedError(
                    f"invalid request ({operation}): {message}",
                    diagnostic=f"CloudWatch refused {operation} as invalid: {message}",
                )
            return BatchRejectedError(
                f"{operation} failed ({code})",
                diagnostic=what,
            )
        try:
            from botocore import exceptions as bex
        except ImportError:  # pragma: no cover - we only get here after botocore raised
            return BatchRejectedError(f"{operation} failed: {type(exc).__name__}")
        text = self._scrub(str(exc))
        if isinstance(exc, (bex.ConnectionError, bex.HTTPClientError)):
            # EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError
            return RetryableError(f"{operation}: {type(exc).__name__}: {text}")
        if isinstance(exc, (bex.NoCredentialsError, bex.PartialCredentialsError)):
            return BatchRejectedError(
                "no usable AWS credentials",
                diagnostic=(
                    f"no usable AWS credentials for {operation} ({text}): set "
                    "aws_access_key_id and aws_secret_access_key, aws_profile, or the usual "
                    f"environment / instance role, with {permission} on {target}"
                ),
            )
        if isinstance(exc, bex.NoRegionError):
            return BatchRejectedError(
                "no AWS region",
                diagnostic="no AWS region: set aws_region (or AWS_DEFAULT_REGION)",
            )
        if isinstance(exc, bex.ProfileNotFound):
            return BatchRejectedError(
                "AWS profile not found",
                diagnostic=f"{text}: fix aws_profile",
            )
        if isinstance(exc, bex.CredentialRetrievalError):
            return RetryableError(f"{operation}: {type(exc).__name__}: {text}")
        return BatchRejectedError(
            f"{operation} failed: {type(exc).__name__}",
            diagnostic=f"{operation} failed: {type(exc).__name__}: {text}",
        )


class DestinationCheckError(RuntimeError):
    """``fail_fast``: the log group or stream is missing, or the region or credentials fail."""


_INIT_FAILED = "Failed to initialize Cloudwatch logger"
#: fail_fast gives up listing after this many pages (a prefix that matches very many groups).
_MAX_DESCRIBE_PAGES = 100


class _GroupMissing(Exception):
    """CreateLogStream said the group does not exist."""


def _millis(created: float) -> int:
    """CloudWatch's integer milliseconds for a record created at ``created`` (seconds).

    The millisecond of the schema's ``timestamp`` field (shipping/encoding.py ``rfc3339``): the
    same microseconds, rounded the same way from the fraction, then floored to the millisecond.
    Flooring ``created * 1000`` instead disagreed with that field about once in 500 events
    (``x.9995`` rounds up to the next millisecond's microseconds).
    """
    frac, whole = math.modf(created)
    return (int(whole) * 1_000_000 + round(frac * 1e6)) // 1000


def _code_of(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if isinstance(code, str) and code:
            return code
    return None


def _retry_after(meta: Mapping[str, Any]) -> float | None:
    headers = meta.get("HTTPHeaders") or {}
    value = headers.get("retry-after") if isinstance(headers, Mapping) else None
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def rejection_reasons(info: Mapping[str, Any], count: int) -> Iterable[str | None]:
    """The reason for each position of a sent request, from ``rejectedLogEventsInfo``.

    ``tooNewLogEventStartIndex`` is inclusive (that event and all after it are too new);
    ``tooOldLogEventEndIndex`` and ``expiredLogEventEndIndex`` are exclusive (the events before
    them). An event that is both expired and too old is reported as expired.
    """

    def index(name: str) -> int | None:
        value = info.get(name)
        if isinstance(value, bool) or not isinstance(value, int):
            return None
        return max(0, min(count, value))

    too_new = index("tooNewLogEventStartIndex")
    too_old = index("tooOldLogEventEndIndex")
    expired = index("expiredLogEventEndIndex")
    for pos in range(count):
        if expired is not None and pos < expired:
            yield "expired"
        elif too_old is not None and pos < too_old:
            yield "too old"
        elif too_new is not None and pos >= too_new:
            yield "too new"
        else:
            yield None
