"""The fake Cloud Logging server, driven by Google's real client: it must accept what the client
really sends and answer errors in the shape the client (and our sink) parse."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from google.api_core import exceptions as api_exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud.logging import Client

from dagster_logship.testing import FakeCloudLogging, RemoteFakeCloudLogging
from dagster_logship.testing.gcp_server import PARTIAL_ERRORS_TYPE

PROJECT = "test-project"
LOG = f"projects/{PROJECT}/logs/app"


def client_for(url: str) -> Any:
    return Client(
        project=PROJECT, credentials=AnonymousCredentials(), _use_grpc=False,
        client_options={"api_endpoint": url},
    )


def raw_write(url: str, body: Any, content_type: str = "application/json") -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(
        url + "/v2/entries:write", data=data, method="POST",
        headers={"Content-Type": content_type},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def test_real_client_log_struct_is_stored_with_defaults(server: FakeCloudLogging) -> None:
    logger = client_for(server.url).logger("app", labels={"env": "test"})
    logger.log_struct({"message": "hi", "n": 1}, severity="WARNING", insert_id="id-1")
    assert server.wait_for(1, timeout=5)
    entries = server.entries()
    # Logger.log_struct adds the library's diagnostic entry to the first write of a process
    # (DESIGN §5); it may have been written already by an earlier test in this process.
    ours = [e for e in entries if e.get("insertId") == "id-1"]
    assert len(ours) == 1
    entry = ours[0]
    assert entry["jsonPayload"] == {"message": "hi", "n": 1}
    assert entry["severity"] == "WARNING"
    assert entry["logName"] == LOG
    assert entry["resource"]["type"] == "global"
    assert entry["labels"] == {"env": "test"}
    request = server.requests()[-1]
    assert request["status"] == 200 and request["partial_success"] is True
    assert request["user_agent"] and "gccl" in request["user_agent"]
    assert request["authorization"] is False  # anonymous credentials send no token


def test_low_level_write_entries_request_defaults_apply(server: FakeCloudLogging) -> None:
    api = client_for(server.url).logging_api
    api.write_entries(
        [{"jsonPayload": {"a": 1}}, {"textPayload": "t", "labels": {"k": "entry"}}],
        logger_name=LOG, resource={"type": "generic_task", "labels": {"job": "j"}},
        labels={"k": "request", "other": "x"},
    )
    first, second = server.entries()
    assert first["logName"] == second["logName"] == LOG
    assert first["resource"] == {"type": "generic_task", "labels": {"job": "j"}}
    assert first["labels"] == {"k": "request", "other": "x"}
    assert second["labels"] == {"k": "entry", "other": "x"}  # entry labels win
    # The client sends the snake_case "dry_run" field; the service accepts both spellings.
    assert "dry_run" in server.requests()[0]["body"]


def test_fail_next_answers_like_the_api(server: FakeCloudLogging) -> None:
    api = client_for(server.url).logging_api
    server.fail_next(1, status=429, retry_after=2)
    server.fail_next(1, status=503)
    with pytest.raises(api_exceptions.TooManyRequests) as throttled:
        api.write_entries([{"jsonPayload": {}}], logger_name=LOG, resource={"type": "global"})
    assert throttled.value.response.headers["Retry-After"] == "2"
    assert throttled.value.response.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    with pytest.raises(api_exceptions.ServiceUnavailable):
        api.write_entries([{"jsonPayload": {}}], logger_name=LOG, resource={"type": "global"})
    api.write_entries([{"jsonPayload": {}}], logger_name=LOG, resource={"type": "global"})
    assert [r["status"] for r in server.requests()] == [429, 503, 200]
    assert len(server.entries()) == 1  # failed requests store nothing
    assert server.pending_faults() == 0


def test_partial_next_reports_entry_errors_and_writes_the_rest(server: FakeCloudLogging) -> None:
    api = client_for(server.url).logging_api
    server.partial_next(1, {1: "UNAVAILABLE", 2: 3, 7: "INTERNAL"})  # 7: beyond; ignored
    entries = [{"jsonPayload": {"i": i}, "insertId": str(i)} for i in range(4)]
    with pytest.raises(api_exceptions.GoogleAPICallError) as failed:
        api.write_entries(entries, logger_name=LOG, resource={"type": "global"})
    # The HTTP status is the first failed entry's; details carry every failed index.
    assert failed.value.code == 503
    (detail,) = failed.value.details
    assert detail["@type"] == PARTIAL_ERRORS_TYPE
    assert {k: v["code"] for k, v in detail["logEntryErrors"].items()} == {"1": 14, "2": 3}
    assert [e["insertId"] for e in server.entries()] == ["0", "3"]
    assert server.requests()[0]["written"] == [0, 3]


def test_without_partial_success_a_failing_request_stores_nothing(
    server: FakeCloudLogging,
) -> None:
    api = client_for(server.url).logging_api
    server.partial_next(1, {0: "INVALID_ARGUMENT"})
    with pytest.raises(api_exceptions.BadRequest):
        api.write_entries(
            [{"jsonPayload": {}}, {"jsonPayload": {}}], logger_name=LOG,
            resource={"type": "global"}, partial_success=False,
        )
    assert server.entries() == []


def test_validation_of_requests(server: FakeCloudLogging) -> None:
    good = {"logName": LOG, "resource": {"type": "global"}, "partialSuccess": True}
    assert raw_write(server.url, {**good, "entries": [{"jsonPayload": {}}]})[0] == 200
    # Whole-request errors, as a JSON parse error of the real API.
    for body in (
        {**good, "entries": []},
        {**good, "entries": [{"jsonPayload": {}, "bogus": 1}]},
        {**good, "bogusTop": 1, "entries": [{"jsonPayload": {}}]},
        {**good, "entries": [{"jsonPayload": {}, "textPayload": "x"}]},
        {**good, "entries": [{"jsonPayload": {}, "severity": "LOUD"}]},
        {**good, "entries": [{"jsonPayload": {}, "timestamp": "yesterday"}]},
        {**good, "entries": [{"jsonPayload": {}, "labels": {"n": 1}}]},
    ):
        status, answer = raw_write(server.url, body)
        assert status == 400 and answer["error"]["status"] == "INVALID_ARGUMENT", body
    assert raw_write(server.url, b"not json")[0] == 400
    assert raw_write(server.url, {**good, "entries": [{}]}, content_type="text/plain")[0] == 400
    # Per-entry errors: the valid entry is still written.
    huge = {"jsonPayload": {"m": "x" * (256 * 1024)}}
    status, answer = raw_write(server.url, {
        "resource": {"type": "global"}, "partialSuccess": True,
        "entries": [
            {"jsonPayload": {"ok": True}, "logName": LOG},
            {"jsonPayload": {}},  # no logName at all
            {**huge, "logName": LOG},
            {"jsonPayload": {}, "logName": "projects/p/logs/has space"},
            {"jsonPayload": {}, "logName": LOG, "timestamp": "2001-01-01T00:00:00Z"},
        ],
    })
    assert status == 400
    errors = answer["error"]["details"][0]["logEntryErrors"]
    assert sorted(errors) == ["1", "2", "3", "4"]
    assert "exceeds maximum size" in errors["2"]["message"]
    assert [e["jsonPayload"] for e in server.entries()[1:]] == [{"ok": True}]


def test_request_size_limit(server: FakeCloudLogging) -> None:
    entry = {"jsonPayload": {"m": "x" * 200_000}}
    body = {"logName": LOG, "resource": {"type": "global"}, "entries": [entry] * 60}
    status, answer = raw_write(server.url, body)
    assert status == 400 and "payload size exceeds" in answer["error"]["message"]


def test_other_paths_and_methods(server: FakeCloudLogging) -> None:
    request = urllib.request.Request(server.url + "/v2/logs", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(request, timeout=5)
    assert missing.value.code == 404
    for path in ("/v2/entries:write", "/v2/entries:list"):
        with pytest.raises(urllib.error.HTTPError) as wrong:
            urllib.request.urlopen(server.url + path, timeout=5)
        assert wrong.value.code == 405


def test_wait_for_times_out_false(server: FakeCloudLogging) -> None:
    assert server.wait_for(1, timeout=0.05) is False
    assert server.wait_for(0, timeout=0) is True


def test_runs_as_a_separate_process() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "dagster_logship.testing.gcp_server", "--port", "0"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        remote = RemoteFakeCloudLogging(url)
        remote.fail_next(1, status=500)
        remote.partial_next(1, {0: "UNAVAILABLE"})
        api = client_for(url).logging_api
        entries = [{"jsonPayload": {"i": 0}}, {"jsonPayload": {"i": 1}}]
        for _ in range(2):
            with pytest.raises(api_exceptions.GoogleAPICallError):
                api.write_entries(entries, logger_name=LOG, resource={"type": "global"})
        assert remote.wait_for(1, timeout=5)
        assert [e["jsonPayload"] for e in remote.entries()] == [{"i": 1}]
        assert [r["status"] for r in remote.requests()] == [500, 503]
        listing = client_for(url).list_entries(resource_names=[f"projects/{PROJECT}"])
        assert [e.payload for e in listing] == [{"i": 1}]
        assert [r["returned"] for r in remote.list_requests()] == [1]
        remote.clear()
        assert remote.entries() == [] and remote.wait_for(1, timeout=0.05) is False
    finally:
        proc.terminate()
        proc.wait(10)
    assert proc.returncode == 0  # SIGTERM stops it cleanly


def test_entry_size_is_counted_in_utf8_bytes_as_sent(server: FakeCloudLogging) -> None:
    """An entry's size is its JSON as sent, in UTF-8 bytes: 120,000 'é' (240,000 bytes) fit in
    256 KiB, 140,000 (280,000 bytes) do not, whatever their count of characters."""
    body = {
        "logName": LOG, "resource": {"type": "global"}, "partialSuccess": True,
        "entries": [
            {"jsonPayload": {"m": "é" * 120_000}},
            {"jsonPayload": {"m": "é" * 140_000}},
            {"jsonPayload": {"m": "日" * 80_000}},  # 240,000 bytes: fits
        ],
    }
    status, answer = raw_write(server.url, json.dumps(body, ensure_ascii=False).encode())
    assert status == 400
    errors = answer["error"]["details"][0]["logEntryErrors"]
    assert sorted(errors) == ["1"] and "exceeds maximum size" in errors["1"]["message"]
    assert [len(e["jsonPayload"]["m"]) for e in server.entries()] == [120_000, 80_000]


# -- entries.list ----------------------------------------------------------------------------------


def write_run_entries(url: str) -> list[str]:
    """Entries like gcp_logger's: two runs (labels run_id, job_name) and another project's."""
    api = client_for(url).logging_api
    base = datetime.now(timezone.utc) - timedelta(minutes=10)
    stamps = [(base + timedelta(seconds=i)).isoformat().replace("+00:00", "Z") for i in range(6)]
    runs = ["302fc568-34d1-446e-a9ac-e7231770b6da", "9a0b1c2d-0000-4000-8000-000000000000"]
    entries = [
        {"jsonPayload": {"message": f"m{i}", "i": i}, "timestamp": stamps[i],
         "severity": "WARNING" if i % 3 == 2 else "INFO", "insertId": f"id-{i}",
         "labels": {"run_id": runs[i % 2], "job_name": "orders"}}
        for i in range(5)
    ]
    api.write_entries(entries, logger_name=LOG, resource={"type": "global"})
    api.write_entries([{"textPayload": "elsewhere", "timestamp": stamps[5],
                        "labels": {"run_id": runs[0]}}],
                      logger_name="projects/other-project/logs/app",
                      resource={"type": "global"})
    return stamps


def listed(url: str, filter_: str, **kwargs: Any) -> list[Any]:
    return [e.payload.get("i") for e in client_for(url).list_entries(
        resource_names=[f"projects/{PROJECT}"], filter_=filter_, **kwargs)]


def test_list_entries_with_the_real_client(server: FakeCloudLogging) -> None:
    from google.cloud.logging import DESCENDING

    stamps = write_run_entries(server.url)
    assert listed(server.url, 'labels.run_id="302fc568-34d1-446e-a9ac-e7231770b6da"') == [
        0, 2, 4]
    assert listed(server.url, 'labels.run_id:"302fc568"') == [0, 2, 4]  # has: a substring
    assert listed(server.url, 'labels.run_id:"302FC568"') == [0, 2, 4]  # ignoring case
    assert listed(server.url, 'labels.run_id:"34d1-446e"') == [0, 2, 4]
    assert listed(server.url, f'labels.run_id:"302fc568" AND timestamp>="{stamps[2]}"') == [2, 4]
    assert listed(server.url, f'logName="{LOG}" timestamp<"{stamps[2]}"') == [0, 1]
    assert listed(server.url, "severity>=WARNING") == [2]
    assert listed(server.url, 'jsonPayload.message="m3" AND insertId!="id-1"') == [3]
    assert listed(server.url, "labels.job_name:*") == [0, 1, 2, 3, 4]
    assert listed(server.url, "labels.nothing:*") == []
    assert listed(server.url, 'labels.run_id:"302fc568"', order_by=DESCENDING) == [4, 2, 0]
    # Small pages: the client follows nextPageToken until the last page.
    assert listed(server.url, "labels.job_name=orders", page_size=2) == [0, 1, 2, 3, 4]
    pages = [r for r in server.list_requests() if r["body"].get("pageSize") == 2]
    assert [r["returned"] for r in pages] == [2, 2, 1]
    assert all(r["status"] == 200 for r in server.list_requests())
    # The client's own default (timestamp >= a day ago, written with +0000) is understood.
    first = server.list_requests()[0]["body"]
    assert first["resourceNames"] == [f"projects/{PROJECT}"]
    assert 'timestamp>="' in first["filter"] and first["filter"].endswith('+0000"')


def test_list_entries_refuses_what_it_does_not_support(server: FakeCloudLogging) -> None:
    write_run_entries(server.url)
    api = client_for(server.url).logging_api
    for filter_, said in (
        ('labels.a="x" OR labels.b="y"', "OR is not supported"),
        ('NOT labels.a="x"', "NOT is not supported"),
        ('(labels.a="x")', "parentheses are not supported"),
        ('labels.a=~"x.*"', "regular expressions are not supported"),
        ('"just words"', "not a comparison"),
        ('timestamp>="yesterday"', "invalid timestamp"),
        ("labels.a=", "needs a value"),
    ):
        with pytest.raises(api_exceptions.BadRequest) as refused:
            list(api.list_entries([f"projects/{PROJECT}"], filter_=filter_))
        assert said in str(refused.value), filter_
    status, answer = raw_list(server.url, {"resourceNames": ["organizations/1"]})
    assert status == 400 and "projects/PROJECT" in answer["error"]["message"]
    status, answer = raw_list(server.url, {"projectIds": [PROJECT]})
    assert status == 400 and "projectIds" in answer["error"]["message"]
    body = {"resourceNames": [f"projects/{PROJECT}"], "pageSize": 1}
    status, page = raw_list(server.url, body)
    assert status == 200 and len(page["entries"]) == 1
    status, _ = raw_list(server.url, {**body, "pageToken": page["nextPageToken"],
                                      "filter": "labels.job_name=orders"})
    assert status == 400  # a token is good for the request it came from only
    status, second = raw_list(server.url, {**body, "pageToken": page["nextPageToken"]})
    assert status == 200 and second["entries"][0]["insertId"] == "id-1"
    assert raw_list(server.url, {**body, "orderBy": "severity"})[0] == 400
    assert raw_list(server.url, {**body, "pageSize": 1001})[0] == 400


def test_listed_entries_without_timestamp_get_the_receive_time(server: FakeCloudLogging) -> None:
    api = client_for(server.url).logging_api
    api.write_entries([{"textPayload": "no time"}], logger_name=LOG, resource={"type": "global"})
    [entry] = client_for(server.url).list_entries(resource_names=[f"projects/{PROJECT}"])
    assert entry.payload == "no time"
    assert entry.timestamp is not None
    assert entry.timestamp.isoformat().startswith(server.entries()[0]["receiveTimestamp"][:19])


def raw_list(url: str, body: Any) -> tuple[int, Any]:
    request = urllib.request.Request(
        url + "/v2/entries:list", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")
