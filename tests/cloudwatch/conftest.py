"""Fixtures for the CloudWatch unit tests: in-process moto, handlers with fast timings, and a
recorder of the PutLogEvents requests our client really makes."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from support import offline_cloud_env

from dagster_logship.handlers.cloudwatch import CloudWatchHandler
from dagster_logship.sinks.cloudwatch import CloudWatchSink
from dagster_logship.testing import mock_cloudwatch, moto_server

REGION = "us-east-1"


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """Dummy credentials, no user config files, no instance metadata: never real AWS."""
    offline_cloud_env(monkeypatch, tmp_path, session_token="testing", region=REGION)


@pytest.fixture
def logs() -> Iterator[Any]:
    """In-process moto; yields a boto3 logs client for checking what arrived."""
    with mock_cloudwatch(REGION) as client:
        yield client


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto server process on loopback, for tests that inject faults into the HTTP exchange.

    (In-process moto answers from a ``before-send`` hook that botocore calls even after ours
    answered, so a request we fail on purpose would still be stored there.)
    """
    with moto_server() as url:
        yield url


@pytest.fixture
def server_logs(moto_endpoint: str) -> Any:
    """A boto3 logs client of the moto server, for checking what arrived."""
    import boto3

    return boto3.session.Session().client(
        "logs", region_name=REGION, endpoint_url=moto_endpoint,
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )


def names() -> tuple[str, str]:
    tag = uuid.uuid4().hex[:10]
    return f"/test/cw/{tag}", f"stream-{tag}"


def sink_of(handler: CloudWatchHandler) -> CloudWatchSink:
    """The sink behind a handler (one per destination per process, owned by the worker)."""
    worker = handler.worker
    assert worker is not None
    sink = worker.sink
    assert isinstance(sink, CloudWatchSink)
    return sink


class Requests:
    """PutLogEvents requests as they went over the wire (bodies read on botocore's before-send).

    ``attempts`` holds every request made; ``calls`` only those the service accepted (a request
    answered ResourceNotFoundException, before the group or stream was created, is not one).
    """

    def __init__(self) -> None:
        self.attempts: list[dict[str, Any]] = []
        self.calls: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._last = threading.local()

    def before(self, request: Any, **_: Any) -> None:
        # What goes over the wire: the body the sink wrote, as signed and sent.
        body = request.body
        params = json.loads(body.decode("utf-8") if isinstance(body, bytes) else body)
        self._last.params = params
        with self._lock:
            self.attempts.append(params)

    def after(self, http_response: Any, **_: Any) -> None:
        params = getattr(self._last, "params", None)
        self._last.params = None
        if params is not None and http_response.status_code < 300:
            with self._lock:
                self.calls.append(params)

    def batches(self) -> list[list[dict[str, Any]]]:
        with self._lock:
            return [list(call["logEvents"]) for call in self.calls]


def cloudwatch_bytes(events: list[dict[str, Any]]) -> int:
    """A request's size the way CloudWatch counts it: UTF-8 message bytes + 26 per event."""
    return sum(len(event["message"].encode("utf-8")) + 26 for event in events)


def record_requests(handler: CloudWatchHandler) -> Requests:
    recorder = Requests()
    events = sink_of(handler).client().meta.events
    events.register("before-send.cloudwatch-logs.PutLogEvents", recorder.before)
    events.register("after-call.cloudwatch-logs.PutLogEvents", recorder.after)
    return recorder


class Fault:
    """The real client gets an HTTP error (``code``, ``status``) for its next ``times`` requests
    of one operation, or ``raises`` (a botocore timeout / connection error) instead.

    Registered first on ``before-send``: the answer goes through botocore's own parsing and retry
    handler exactly as one from AWS would, and the request never reaches the (moto server)
    endpoint. ``sent`` counts HTTP attempts, so a retry botocore made by itself would show.
    """

    def __init__(
        self,
        code: str = "",
        status: int = 400,
        times: int = 1,
        message: str = "injected",
        raises: Callable[[Any], BaseException] | None = None,
        body: bytes | None = None,
    ) -> None:
        self.code, self.status, self.left, self.message = code, status, times, message
        self.body = body  # as sent, instead of an error document made of code and message
        self.raises = raises
        self.sent = 0
        self.failed = 0
        self._lock = threading.Lock()

    def __call__(self, request: Any, **_: Any) -> Any:
        from botocore.awsrequest import AWSResponse

        with self._lock:
            self.sent += 1
            if self.left <= 0:
                return None
            self.left -= 1
            self.failed += 1
        if self.raises is not None:
            raise self.raises(request)
        body = self.body
        if body is None:
            body = json.dumps({"__type": self.code, "message": self.message}).encode()
        headers: Any = {"content-type": "application/x-amz-json-1.1"}
        return AWSResponse(request.url, self.status, headers, _Raw(body))


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body

    def read(self, *_: Any) -> bytes:
        return self.body


def inject(handler: CloudWatchHandler, operation: str, fault: Fault) -> Fault:
    client = sink_of(handler).client()
    client.meta.events.register_first(f"before-send.cloudwatch-logs.{operation}", fault)
    return fault


@pytest.fixture
def make_handler() -> Iterator[Callable[..., tuple[CloudWatchHandler, logging.Logger]]]:
    """A CloudWatchHandler on a fresh logger, with fast timings and its own destination."""
    made: list[CloudWatchHandler] = []

    def make(**kwargs: Any) -> tuple[CloudWatchHandler, logging.Logger]:
        group, stream = names()
        kwargs.setdefault("log_group_name", group)
        kwargs.setdefault("log_stream_name", stream)
        kwargs.setdefault("aws_region", REGION)
        kwargs.setdefault("flush_interval", 0.05)
        kwargs.setdefault("flush_timeout", 10.0)
        kwargs.setdefault("retry_initial_backoff", 0.01)
        kwargs.setdefault("retry_max_backoff", 0.05)
        kwargs.setdefault("retry_deadline", 10.0)
        handler = CloudWatchHandler(**kwargs)
        logger = logging.Logger(f"cw-test-{uuid.uuid4().hex[:8]}", level=logging.DEBUG)
        logger.addHandler(handler)
        made.append(handler)
        return handler, logger

    yield make
    for handler in made:
        handler.close()


@pytest.fixture
def cw() -> SimpleNamespace:
    """Helpers for the tests (conftest modules cannot be imported under --import-mode=importlib)."""
    return SimpleNamespace(
        names=names,
        sink_of=sink_of,
        record_requests=record_requests,
        inject=inject,
        Fault=Fault,
        cloudwatch_bytes=cloudwatch_bytes,
        REGION=REGION,
    )
