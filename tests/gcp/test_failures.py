"""Failures: what is retried (whole requests, or only the entries that failed transiently), what
is spilled and counted, and what the operator is told. Real client, fake server."""

from __future__ import annotations

import collections
import logging
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from dagster_logship.shipping import BatchRejectedError, RetryableError
from dagster_logship.sinks.gcp import GcpSink, GcpTarget
from dagster_logship.testing import FakeCloudLogging


def written_counts(server: FakeCloudLogging) -> collections.Counter[str]:
    """How often each insertId was accepted by the service, over every request."""
    counts: collections.Counter[str] = collections.Counter()
    for request in server.requests():
        for index in request["written"]:
            counts[request["insert_ids"][index]] += 1
    return counts


def emit_batch(handler: Any, gcp: Any, n: int) -> None:
    """``n`` records in one request: the handler's flush_interval is long, flush() sends them."""
    logger = gcp.logger_for(handler)
    for i in range(n):
        logger.info("record %d", i)
    assert handler.flush(10)


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504, 408])
def test_transient_request_errors_are_retried(
    server: FakeCloudLogging, make_handler: Any, gcp: Any, status: int
) -> None:
    server.fail_next(2, status=status)
    handler = make_handler(flush_interval=10.0)
    emit_batch(handler, gcp, 3)
    requests = server.requests()
    assert [r["status"] for r in requests] == [status, status, 200]
    # The resend reuses the insertIds, so a request that was written after all collapses.
    assert requests[0]["insert_ids"] == requests[2]["insert_ids"]
    assert len(server.entries()) == 3
    stats = handler.stats
    assert stats["delivered"] == 3 and stats["retried"] == 2 and stats["spilled"] == 0


def test_retry_after_is_honoured(server: FakeCloudLogging, make_handler: Any, gcp: Any) -> None:
    server.fail_next(1, status=429, retry_after=0.3)
    handler = make_handler(flush_interval=10.0)
    started = time.monotonic()
    emit_batch(handler, gcp, 1)
    assert time.monotonic() - started >= 0.3  # backoff alone would be ≤ 50 ms
    assert len(server.entries()) == 1


def test_partial_failure_resends_only_failed_entries(
    server: FakeCloudLogging, make_handler: Any, gcp: Any, spill_path: Path
) -> None:
    server.partial_next(1, {1: "UNAVAILABLE", 3: "INVALID_ARGUMENT", 4: "RESOURCE_EXHAUSTED"})
    server.partial_next(1, {0: "DEADLINE_EXCEEDED"})  # the resend fails again for entry 1
    handler = make_handler(flush_interval=10.0)
    emit_batch(handler, gcp, 6)
    first, second, third = server.requests()
    assert first["written"] == [0, 2, 5]
    ids = first["insert_ids"]
    assert second["insert_ids"] == [ids[1], ids[4]]  # only the transient failures, alone
    assert second["written"] == [1]
    assert third["insert_ids"] == [ids[1]] and third["written"] == [0]
    # Accepted entries were never sent again; every record but the rejected one arrived once.
    counts = written_counts(server)
    assert set(counts.values()) == {1}
    assert set(counts) == set(ids) - {ids[3]}
    stats = handler.stats
    assert stats["delivered"] == 5 and stats["rejected"] == 1 and stats["spilled"] == 1
    (spill,) = gcp.spilled(spill_path)
    assert spill["message"] == "record 3"
    assert "INVALID_ARGUMENT" in spill["logship_spill"]["reason"]


def test_entries_the_service_refuses_are_spilled_not_retried(
    server: FakeCloudLogging, make_handler: Any, gcp: Any, spill_path: Path
) -> None:
    """A record two months old (as if it had waited in a queue that long) is refused per entry
    by the service's own rule; the entry next to it is written."""

    class Backdate(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            if record.msg == "old":
                record.created = time.time() - 60 * 86400
            return True

    handler = make_handler(flush_interval=10.0)
    logger = gcp.logger_for(handler)
    logger.addFilter(Backdate())
    logger.info("old")
    logger.info("new")
    assert handler.flush(10)
    assert [r["status"] for r in server.requests()] == [400]  # once: never retried
    assert [e["jsonPayload"]["message"] for e in server.entries()] == ["new"]
    assert [s["message"] for s in gcp.spilled(spill_path)] == ["old"]
    assert handler.stats["rejected"] == 1 and handler.stats["delivered"] == 1


def test_permission_denied_one_diagnostic_then_spill(
    server: FakeCloudLogging, make_handler: Any, gcp: Any, spill_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    server.fail_next(2, status=403, message="Permission 'logging.logEntries.create' denied")
    handler = make_handler(flush_interval=10.0)
    logger = gcp.logger_for(handler)
    logger.error("first")
    assert handler.flush(10)
    logger.error("second")
    assert handler.flush(10)
    logger.error("third")  # the service lets us in again
    assert handler.flush(10)
    err = capfd.readouterr().err
    diagnostics = [line for line in err.splitlines() if "roles/logging.logWriter" in line]
    assert len(diagnostics) == 1, err
    assert "PERMISSION_DENIED" in diagnostics[0]
    assert "logging.logEntries.create" in diagnostics[0]
    assert [r["status"] for r in server.requests()] == [403, 403, 200]  # never retried
    assert [s["message"] for s in gcp.spilled(spill_path)] == ["first", "second"]
    assert [e["jsonPayload"]["message"] for e in server.entries()] == ["third"]
    assert handler.stats["spilled"] == 2 and handler.stats["delivered"] == 1


def test_endpoint_refusing_anonymous_requests(
    server: FakeCloudLogging, make_handler: Any, gcp: Any, spill_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A 401 makes the client's session try to refresh the token, which anonymous credentials
    cannot: one line saying what the server wants, then spill."""
    server.fail_next(2, status=401)
    handler = make_handler(flush_interval=10.0)
    logger = gcp.logger_for(handler)
    logger.error("x")
    assert handler.flush(10)
    logger.error("y")
    assert handler.flush(10)
    lines = [ln for ln in capfd.readouterr().err.splitlines() if "anonymous request" in ln]
    assert len(lines) == 1 and "UNAUTHENTICATED" in lines[0]
    assert len(gcp.spilled(spill_path)) == 2


def answer_of(server: FakeCloudLogging, **fault: Any) -> Any:
    """The real ``GoogleAPICallError`` for a fake server's error answer, as api_core builds it."""
    from google.api_core import exceptions as api_exceptions

    server.fail_next(1, **fault)
    body = {"logName": "projects/p/logs/l", "resource": {"type": "global"},
            "entries": [{"jsonPayload": {}}]}
    response = requests.post(server.url + "/v2/entries:write", json=body, timeout=10)
    return api_exceptions.from_http_response(response)


def test_unauthenticated_with_real_credentials_holds_no_token(
    server: FakeCloudLogging, gcp: Any
) -> None:
    """With real credentials a 401 survives the session's refresh and reaches our classifier."""
    sink = GcpSink(GcpTarget.of(project=gcp.PROJECT))
    error = answer_of(
        server, status=401, message="Invalid Credentials: Bearer ya29.a0SECRETTOKEN rejected"
    )
    with pytest.raises(BatchRejectedError) as rejected:
        sink._answer(error, 1)
    line = rejected.value.diagnostic or ""
    assert "UNAUTHENTICATED" in line and "GOOGLE_APPLICATION_CREDENTIALS" in line
    assert "SECRETTOKEN" not in line and "ya29" not in line


def test_request_level_classification(server: FakeCloudLogging, gcp: Any) -> None:
    sink = GcpSink(GcpTarget.of(project=gcp.PROJECT))
    for status in (408, 429, 500, 502, 503, 504):
        with pytest.raises(RetryableError):
            sink._answer(answer_of(server, status=status), 1)
    with pytest.raises(RetryableError) as throttled:
        sink._answer(answer_of(server, status=429, retry_after=7), 1)
    assert throttled.value.retry_after == 7
    for status, words in ((400, "INVALID_ARGUMENT"), (403, "roles/logging.logWriter"),
                          (404, "NOT_FOUND")):
        with pytest.raises(BatchRejectedError) as rejected:
            sink._answer(answer_of(server, status=status), 1)
        assert words in (rejected.value.diagnostic or "")


def test_every_entry_denied_is_a_batch_error(
    server: FakeCloudLogging, make_handler: Any, gcp: Any, spill_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    server.partial_next(1, {0: "PERMISSION_DENIED", 1: "PERMISSION_DENIED"})
    handler = make_handler(flush_interval=10.0)
    emit_batch(handler, gcp, 2)
    assert "roles/logging.logWriter" in capfd.readouterr().err
    assert len(gcp.spilled(spill_path)) == 2 and len(server.requests()) == 1


def test_retries_exhausted_are_spilled(
    server: FakeCloudLogging, make_handler: Any, gcp: Any, spill_path: Path
) -> None:
    server.fail_next(1000, status=503)
    handler = make_handler(flush_interval=10.0, retry_deadline=0.3)
    emit_batch(handler, gcp, 2)
    assert handler.stats["spilled"] == 2 and handler.stats["delivered"] == 0
    assert all("retries exhausted" in s["logship_spill"]["reason"] for s in gcp.spilled(spill_path))
