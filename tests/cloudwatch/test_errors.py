"""Error classification on the real client path: transient failures are retried by the shared
policy (botocore makes one attempt per try), permanent ones give one diagnostic line naming the
missing IAM permission and spill. Faults are injected into the real client's HTTP exchange with
a moto server process (see ``Fault`` in conftest)."""

from __future__ import annotations

import socket
import sys
from typing import Any

import pytest
from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from dagster_logship.shipping import BatchRejectedError, read_spill
from dagster_logship.sinks.cloudwatch import INSTALL_HINT, CloudWatchSink
from dagster_logship.testing import read_events


@pytest.fixture
def ready(server_logs: Any, moto_endpoint: str, make_handler: Any) -> Any:
    """A handler whose group and stream exist, so every PutLogEvents reaches the fault first."""

    def make(**kwargs: Any) -> Any:
        handler, logger = make_handler(endpoint_url=moto_endpoint, **kwargs)
        server_logs.create_log_group(logGroupName=handler.log_group_name)
        server_logs.create_log_stream(logGroupName=handler.log_group_name,
                                      logStreamName=handler.log_stream_name)
        return handler, logger

    return make


def stored(server_logs: Any, handler: Any) -> list[str]:
    events = read_events(handler.log_group_name, handler.log_stream_name, client=server_logs)
    return [event["message"] for event in events]


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ThrottlingException", 400),
        ("ServiceUnavailableException", 503),
        ("InternalFailure", 500),
        ("SomethingNew", 502),  # any 5xx
    ],
)
def test_transient_errors_are_retried_by_our_policy(
    server_logs: Any, ready: Any, cw: Any, code: str, status: int
) -> None:
    handler, logger = ready()
    fault = cw.inject(handler, "PutLogEvents", cw.Fault(code, status, times=3))
    for i in range(5):
        logger.info("m%d", i)
    assert handler.flush(10)

    assert fault.failed == 3
    assert fault.sent == 4  # one HTTP attempt per try: botocore did not retry on its own
    assert handler.stats["retried"] == 3
    assert handler.stats["delivered"] == 5 and handler.stats["spilled"] == 0
    assert stored(server_logs, handler) == [f"m{i}" for i in range(5)]  # exactly once


@pytest.mark.parametrize(
    "error",
    [
        lambda request: ReadTimeoutError(endpoint_url=request.url),
        lambda request: ConnectTimeoutError(endpoint_url=request.url),
        lambda request: ConnectionClosedError(endpoint_url=request.url),
        lambda request: EndpointConnectionError(endpoint_url=request.url),
    ],
    ids=["read-timeout", "connect-timeout", "connection-closed", "endpoint-connection"],
)
def test_timeouts_and_connection_errors_are_retried(
    server_logs: Any, ready: Any, cw: Any, error: Any
) -> None:
    handler, logger = ready()
    fault = cw.inject(handler, "PutLogEvents", cw.Fault(times=2, raises=error))
    logger.info("through")
    assert handler.flush(10)
    assert fault.sent == 3
    assert handler.stats["retried"] == 2
    assert stored(server_logs, handler) == ["through"]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_endpoint_retries_until_the_deadline_then_spills(
    make_handler: Any, cw: Any, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    spill = tmp_path / "spill.jsonl"
    handler, logger = make_handler(
        endpoint_url=f"http://127.0.0.1:{_closed_port()}", retry_deadline=1.0,
        spill_path=str(spill),
    )
    cw.sink_of(handler).client()  # built beforehand: the deadline is spent on retries alone
    logger.info("nowhere to go")
    assert handler.flush(10)
    assert handler.stats["retried"] >= 1
    (event,) = read_spill(spill)
    assert event["message"] == "nowhere to go"
    assert "retries exhausted" in event["logship_spill"]["reason"]
    assert "EndpointConnectionError" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("operation", "permission"),
    [
        ("PutLogEvents", "logs:PutLogEvents"),
        ("CreateLogStream", "logs:CreateLogStream"),
        ("CreateLogGroup", "logs:CreateLogGroup"),
    ],
)
def test_access_denied_is_one_line_naming_the_permission_then_spill(
    moto_endpoint: str, make_handler: Any, cw: Any, tmp_path: Any,
    capsys: pytest.CaptureFixture[str], operation: str, permission: str,
) -> None:
    spill = tmp_path / "spill.jsonl"
    handler, logger = make_handler(endpoint_url=moto_endpoint, spill_path=str(spill))
    fault = cw.inject(handler, operation, cw.Fault("AccessDeniedException", 400, times=100))
    for batch in range(3):
        logger.info("batch %d", batch)
        assert handler.flush(10)

    err = capsys.readouterr().err
    diagnostics = [line for line in err.splitlines() if "AccessDenied" in line]
    assert len(diagnostics) == 1  # once per destination, not once per batch
    assert permission in diagnostics[0]
    assert handler.log_group_name in diagnostics[0]
    assert fault.failed == 3  # never retried
    assert [e["message"] for e in read_spill(spill)] == ["batch 0", "batch 1", "batch 2"]
    assert handler.stats["retried"] == 0 and handler.stats["spilled"] == 3


def test_a_bare_403_is_access_denied_naming_the_permission(
    ready: Any, cw: Any, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 403 without an error document (a proxy, an endpoint policy) reaches botocore as code
    "403"; it is the identity being refused, said as such, and never retried."""
    spill = tmp_path / "spill.jsonl"
    handler, logger = ready(spill_path=str(spill))
    fault = cw.inject(handler, "PutLogEvents", cw.Fault(status=403, times=100, body=b""))
    logger.info("refused")
    assert handler.flush(10)

    err = capsys.readouterr().err
    diagnostics = [line for line in err.splitlines() if "AccessDenied on PutLogEvents" in line]
    assert len(diagnostics) == 1
    assert "logs:PutLogEvents" in diagnostics[0] and handler.log_group_name in diagnostics[0]
    assert fault.failed == 1  # not retried
    assert [e["message"] for e in read_spill(spill)] == ["refused"]
    assert handler.stats["retried"] == 0 and handler.stats["spilled"] == 1


@pytest.mark.parametrize(
    "code",
    ["UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException"],
)
def test_bad_credentials_are_one_line_then_spill(
    ready: Any, cw: Any, tmp_path: Any, capsys: pytest.CaptureFixture[str], code: str
) -> None:
    spill = tmp_path / "spill.jsonl"
    handler, logger = ready(spill_path=str(spill))
    fault = cw.inject(handler, "PutLogEvents", cw.Fault(code, 400, times=100))
    logger.info("one")
    assert handler.flush(10)
    logger.info("two")
    assert handler.flush(10)

    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "AWS rejected the credentials" in line]
    assert len(lines) == 1  # the spill summary lines aside
    assert code in lines[0] and "logs:PutLogEvents" in lines[0]
    assert fault.failed == 2
    assert len(list(read_spill(spill))) == 2


def test_invalid_parameter_is_not_retried(
    ready: Any, cw: Any, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    spill = tmp_path / "spill.jsonl"
    handler, logger = ready(spill_path=str(spill))
    fault = cw.inject(handler, "PutLogEvents",
                      cw.Fault("InvalidParameterException", 400, times=1, message="bad batch"))
    logger.info("refused")
    assert handler.flush(10)
    assert fault.sent == 1
    assert "bad batch" in capsys.readouterr().err
    (event,) = read_spill(spill)
    assert "invalid request" in event["logship_spill"]["reason"]


def test_missing_credentials_are_one_line_without_network(
    make_handler: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key)
    spill = tmp_path / "spill.jsonl"
    # Credentials are resolved before any connection, so a closed port is never dialled.
    handler, logger = make_handler(endpoint_url=f"http://127.0.0.1:{_closed_port()}",
                                   spill_path=str(spill))
    logger.info("unsigned")
    assert handler.flush(10)
    err = capsys.readouterr().err
    assert "no usable AWS credentials" in err and "logs:PutLogEvents" in err
    assert handler.stats["retried"] == 0
    assert len(list(read_spill(spill))) == 1


def test_missing_region_is_one_line(
    make_handler: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    tmp_path: Any,
) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    handler, logger = make_handler(aws_region=None, spill_path=str(tmp_path / "spill.jsonl"))
    logger.info("where")
    assert handler.flush(10)
    assert "no AWS region: set aws_region" in capsys.readouterr().err


def test_missing_boto3_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    from dagster_logship.handlers.cloudwatch import CloudWatchHandler

    monkeypatch.setitem(sys.modules, "boto3", None)
    with pytest.raises(ImportError, match=r"pip install 'dagster-logship\[aws\]'"):
        CloudWatchHandler("/g", "s")
    sink = CloudWatchSink("/g", "s")
    with pytest.raises(BatchRejectedError) as info:
        sink.client()
    assert info.value.diagnostic == INSTALL_HINT
