"""A fake Google Cloud Logging endpoint for offline tests: a real HTTP server on loopback.

Google ships no Cloud Logging emulator, so tests of code that writes entries either mock the
client (and miss how it really talks) or need a project. This server speaks the REST
``entries.write`` and ``entries.list`` the way the real Python client sends them, so the real
client (``client.list_entries(...)`` too), ``gcp_logger`` / ``GcpHandler`` with
``api_endpoint=server.url`` and ``dagster-logship tail --api-endpoint`` work unchanged::

    with FakeCloudLogging() as server:
        handler = GcpHandler(project="test-project", api_endpoint=server.url)
        ...
        assert server.wait_for(3, timeout=10)
        server.entries()   # stored LogEntry dicts, request defaults applied

What it checks, like the real service:

- ``POST /v2/entries:write`` (query parameters such as ``prettyPrint`` ignored) with a JSON
  object body; other paths answer 404, other methods 405;
- the body is at most 10 MiB, else 400; unknown request or entry fields, a non-list or empty
  ``entries``, entries that are not objects, more than one payload, a bad ``severity``, non-string
  labels, a resource without ``type`` and an unparseable ``timestamp`` fail the whole request
  (400 INVALID_ARGUMENT, as a JSON parse error does);
- per entry (answered as ``WriteLogEntriesPartialErrors``, see below): a missing or malformed
  ``logName`` (``projects/P/logs/ID``, ID 1-511 characters of ``[A-Za-z0-9_.%-]``), logName of
  another project than the request's, no ``resource``, an entry larger than 256 KiB (measured as
  compact JSON: the service counts its protobuf form, close to it), a timestamp older than 30
  days or more than a day ahead;
- ``partialSuccess``: with it the valid entries are stored and the answer is still an error
  carrying the failed indices; without it nothing of a failing request is stored;
- ``dryRun`` (or the client's ``dry_run``) validates without storing.

``POST /v2/entries:list`` answers from the stored entries, with ``resourceNames`` (required,
``projects/P`` each; an entry belongs to the project of its ``logName``), ``filter``,
``orderBy`` (``timestamp asc``, the default, or ``timestamp desc``; ties keep arrival order),
``pageSize`` (1-1000, default 50) and ``pageToken`` (the opaque ``nextPageToken`` of the
previous page of the same request). An entry written without ``timestamp`` is listed with its
``receiveTimestamp`` as timestamp, as the service stamps it. ``list_requests()`` records each
call. The filter is the subset of the Logging query language that ``dagster-logship tail`` and
the client's defaults write: comparisons ``FIELD OP VALUE`` joined by ``AND`` (or juxtaposed),
OP one of ``=`` ``!=`` ``:`` (has: a substring, or ``:*`` for presence) ``<`` ``<=`` ``>``
``>=``, FIELD a dotted path (``logName``, ``insertId``, ``severity``, ``labels.KEY``,
``resource.type``, ``resource.labels.KEY``, ``jsonPayload.a.b``, ``textPayload``,
``timestamp``, ``receiveTimestamp``), VALUE a double-quoted string (JSON escapes) or a bare
word. As in the service, string comparisons ignore case, ``timestamp`` compares as a time (RFC
3339, ``Z``, ``+00:00`` or ``+0000``), ``severity`` by rank (``severity>=WARNING``), a missing
field fails every comparison but ``!=``. Not supported, answered 400 INVALID_ARGUMENT naming
the part: ``OR``, ``NOT`` and ``-``, parentheses, regular expressions (``=~``, ``!~``),
functions (``SEARCH``, ``log_id``, ``sample``...), bare global terms, quoted path segments,
array indexes; nor are other resource kinds (organizations, folders, billing accounts, views),
the service's default of the last 24 hours when a filter has no timestamp (the client adds one
itself), or ``projectIds``.

What it does not do: authentication and authorization (any or no ``Authorization`` header is
accepted; ``requests()`` records only whether one was sent), quotas and rate limits, monitored
resource type and label checks, label count and length limits, ``insertId`` deduplication
(duplicates are stored and listed, so tests can see them: the real service collapses them in
queries), any other method, gRPC, chunked request bodies (the client always sends a
``Content-Length``). Failures beyond those happen only when injected:

- :meth:`FakeCloudLogging.fail_next` — the next ``n`` writes answer ``status`` (429, 500, 503,
  403...) as a ``google.rpc.Status`` JSON error, optionally with ``Retry-After``; nothing stored;
- :meth:`FakeCloudLogging.partial_next` — the next ``n`` writes fail the entries at the given
  indices with the given codes, in the shape of the real API: HTTP status of the first failed
  entry's code, ``error.details`` holding ``type.googleapis.com/google.logging.v2.
  WriteLogEntriesPartialErrors`` whose ``logEntryErrors`` maps the index (a string, as
  protobuf JSON writes map keys) to a ``google.rpc.Status``; indices beyond the request's
  entries are ignored.

For other processes (Dagster's multiprocess executor, ``dagster dev``) the server is reachable on
its URL; it can also run on its own, ``python -m dagster_logship.testing.gcp_server --port N``,
which prints the URL on the first line, and be driven from tests with
:class:`RemoteFakeCloudLogging` through the control paths under ``/_fake/``.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import re
import signal
import sys
import threading
import time
import urllib.parse
import urllib.request
import zlib
from collections import deque
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = [
    "PARTIAL_ERRORS_TYPE",
    "FakeCloudLogging",
    "RemoteFakeCloudLogging",
    "flush_gcp",
    "main",
]

PARTIAL_ERRORS_TYPE = "type.googleapis.com/google.logging.v2.WriteLogEntriesPartialErrors"
MAX_REQUEST_BYTES = 10 * 1024 * 1024
MAX_ENTRY_BYTES = 256 * 1024

_CODES = {
    "OK": 0, "CANCELLED": 1, "UNKNOWN": 2, "INVALID_ARGUMENT": 3, "DEADLINE_EXCEEDED": 4,
    "NOT_FOUND": 5, "ALREADY_EXISTS": 6, "PERMISSION_DENIED": 7, "RESOURCE_EXHAUSTED": 8,
    "FAILED_PRECONDITION": 9, "ABORTED": 10, "OUT_OF_RANGE": 11, "UNIMPLEMENTED": 12,
    "INTERNAL": 13, "UNAVAILABLE": 14, "DATA_LOSS": 15, "UNAUTHENTICATED": 16,
}
_NAMES = {v: k for k, v in _CODES.items()}
_CODE_TO_HTTP = {
    0: 200, 1: 499, 2: 500, 3: 400, 4: 504, 5: 404, 6: 409, 7: 403, 8: 429, 9: 400, 10: 409,
    11: 400, 12: 501, 13: 500, 14: 503, 15: 500, 16: 401,
}
_HTTP_TO_CODE = {
    400: 3, 401: 16, 403: 7, 404: 5, 408: 4, 409: 10, 412: 9, 413: 3, 429: 8, 499: 1, 500: 13,
    501: 12, 502: 14, 503: 14, 504: 4,
}
_REQUEST_FIELDS = frozenset(
    {"logName", "resource", "labels", "entries", "partialSuccess", "partial_success",
     "dryRun", "dry_run"}
)
_ENTRY_FIELDS = frozenset(
    {"logName", "resource", "protoPayload", "textPayload", "jsonPayload", "timestamp",
     "receiveTimestamp", "severity", "insertId", "httpRequest", "labels", "operation", "trace",
     "spanId", "traceSampled", "sourceLocation", "split", "errorGroups", "apphub",
     "apphubDestination"}
)
_PAYLOADS = frozenset({"protoPayload", "textPayload", "jsonPayload"})
_SEVERITIES = frozenset(
    {"DEFAULT", "DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL", "ALERT", "EMERGENCY"}
)
_SEVERITY_NUMBERS = frozenset({0, 100, 200, 300, 400, 500, 600, 700, 800})
_LOG_NAME_RE = re.compile(r"^projects/([^/]+)/logs/([A-Za-z0-9_.%\-]{1,511})$")
_TIMESTAMP_RE = re.compile(
    r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$"
)
_WRITE_PATH = "/v2/entries:write"
_LIST_PATH = "/v2/entries:list"
_LIST_FIELDS = frozenset({"resourceNames", "filter", "orderBy", "pageSize", "pageToken"})
_SEVERITY_RANK = {
    "DEFAULT": 0, "DEBUG": 100, "INFO": 200, "NOTICE": 300, "WARNING": 400, "ERROR": 500,
    "CRITICAL": 600, "ALERT": 700, "EMERGENCY": 800,
}
_TIME_FIELDS = frozenset({"timestamp", "receiveTimestamp"})
_FILTER_TOKEN = re.compile(
    r'\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<op>>=|<=|!=|=~|!~|[=:<>])|(?P<paren>[()])'
    r'|(?P<word>[^\s()"=:<>!~]+))'
)
_FILTER_TIME = re.compile(
    r"^(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(\.\d{1,9})?"
    r"([Zz]|[+-]\d\d:?\d\d)?$"
)


def _code_of(code: int | str) -> int:
    if isinstance(code, int) and code in _NAMES:
        return code
    if isinstance(code, str) and code.upper() in _CODES:
        return _CODES[code.upper()]
    raise ValueError(f"unknown google.rpc.Code {code!r}; use a name such as UNAVAILABLE or 0-16")


def _error_body(http: int, code: int, message: str, details: list[Any] | None = None) -> bytes:
    error: dict[str, Any] = {
        "code": http, "message": message, "status": _NAMES.get(code, "UNKNOWN")
    }
    if details:
        error["details"] = details
    return json.dumps({"error": error}).encode()


_DECODER = json.JSONDecoder()
_scanstring: Any = json.decoder.scanstring  # type: ignore[attr-defined]
_WS = re.compile(r"[ \t\n\r]*")


def _load(raw: bytes) -> tuple[Any, list[int] | None]:
    """``json.loads`` of a request body, plus the size of each element of its ``entries`` array
    as sent (UTF-8 bytes of its JSON text), which is how entry sizes are checked.

    Why not encode each entry again to measure it: for a 1,000-entry request that was a quarter
    of the server's CPU, and the fake is what both clients of the benchmarks wait on. The top
    level is walked here with the json module's own scanner, which parses each value exactly as
    ``json.loads`` does; anything unusual is handed to ``json.loads`` (sizes then None), so errors
    read as before.
    """
    text = raw.decode("utf-8")
    try:
        return _walk(text, raw.isascii())
    except (ValueError, StopIteration, IndexError):
        return json.loads(text), None


def _walk(text: str, ascii_only: bool) -> tuple[Any, list[int] | None]:
    scan: Any = _DECODER.scan_once  # type: ignore[attr-defined]
    ws: Any = _WS.match  # always matches (possibly nothing)
    idx = ws(text, 0).end()
    if text[idx : idx + 1] != "{":
        raise ValueError("not an object")
    body: dict[str, Any] = {}
    sizes: list[int] | None = None
    idx = ws(text, idx + 1).end()
    if text[idx : idx + 1] == "}":
        idx += 1
    else:
        while True:
            if text[idx : idx + 1] != '"':
                raise ValueError("expected a key")
            key, idx = _scanstring(text, idx + 1)
            idx = ws(text, idx).end()
            if text[idx : idx + 1] != ":":
                raise ValueError("expected ':'")
            idx = ws(text, idx + 1).end()
            if key == "entries" and text[idx : idx + 1] == "[":
                value, sizes, idx = _walk_array(text, idx, ascii_only)
            else:
                value, idx = scan(text, idx)
                if key == "entries":
                    sizes = None
            body[key] = value  # a repeated key: the last one counts, as in json.loads
            idx, more = _after_value(text, idx, "}")
            if not more:
                break
    if ws(text, idx).end() != len(text):
        raise ValueError("extra data")
    return body, sizes


def _walk_array(text: str, idx: int, ascii_only: bool) -> tuple[list[Any], list[int], int]:
    scan: Any = _DECODER.scan_once  # type: ignore[attr-defined]
    ws: Any = _WS.match  # always matches (possibly nothing)
    values: list[Any] = []
    sizes: list[int] = []
    idx = ws(text, idx + 1).end()
    if text[idx : idx + 1] == "]":
        return values, sizes, idx + 1
    while True:
        start = idx
        value, idx = scan(text, idx)
        values.append(value)
        size = idx - start
        if not ascii_only and size * 4 > MAX_ENTRY_BYTES:  # could be over: count the bytes
            size = len(text[start:idx].encode("utf-8", "surrogatepass"))
        sizes.append(size)
        idx, more = _after_value(text, idx, "]")
        if not more:
            return values, sizes, idx


def _after_value(text: str, idx: int, closer: str) -> tuple[int, bool]:
    """After a value in an object or array: the index of the next member (True), or the index
    just past ``closer`` (False)."""
    ws: Any = _WS.match
    idx = ws(text, idx).end()
    mark = text[idx : idx + 1]
    if mark == ",":
        return ws(text, idx + 1).end(), True
    if mark != closer:
        raise ValueError(f"expected ',' or {closer!r}")
    return idx + 1, False


def _compact_json(entry: Any) -> str:
    """An entry's size as the service counts it, about: compact JSON. Made by one encoder for
    every entry (``json.dumps`` with options builds a new one per call, and ``encode`` a new C
    encoder): parsed JSON holds no cycles and no objects JSON cannot encode."""
    if _C_COMPACT is None:  # pragma: no cover - Pythons without the C accelerator
        return json.dumps(entry, separators=(",", ":"), ensure_ascii=False)
    return "".join(_C_COMPACT(entry, 0))


_C_COMPACT: Any = (
    json.encoder.c_make_encoder(  # type: ignore[attr-defined]
        None, None, json.encoder.encode_basestring,
        None, ":", ",", False, False, True,
    )
    if json.encoder.c_make_encoder is not None  # type: ignore[attr-defined]
    else None
)


_TOO_OLD, _TOO_NEW = timedelta(days=30), timedelta(days=1)


@functools.lru_cache(maxsize=256)
def _project_of(log_name: str) -> str | None:
    """The project of a valid ``projects/P/logs/L`` name (the same few names, many entries)."""
    match = _LOG_NAME_RE.match(log_name)
    return match.group(1) if match else None


@functools.lru_cache(maxsize=4096)
def _parse_timestamp(value: str) -> datetime | None:
    """RFC 3339 as the API accepts it (checked twice per entry, hence remembered)."""
    match = _TIMESTAMP_RE.match(value)
    if not match:
        return None
    year, month, day, hour, minute, second, frac, zone = match.groups()
    try:
        moment = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second),
            int(((frac or ".0")[1:] + "000000")[:6]), tzinfo=timezone.utc,
        )
    except ValueError:
        return None
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        moment -= sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    return moment


class _BadRequest(Exception):
    """The whole request is invalid (what a JSON parse error is for the real API)."""


def _filter_time(value: str) -> datetime | None:
    """A timestamp in a filter: RFC 3339, also with ``+0000`` (the client's own format)."""
    match = _FILTER_TIME.match(value.strip())
    if not match:
        return None
    year, month, day, hour, minute, second, frac, zone = match.groups()
    try:
        moment = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second),
            int(((frac or ".0")[1:] + "000000")[:6]), tzinfo=timezone.utc,
        )
    except ValueError:
        return None
    if zone and zone.upper() != "Z":
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        moment -= offset if zone[0] == "+" else -offset
    return moment


_Comparison = tuple[str, str, Any]


def _parse_filter(text: str) -> list[_Comparison]:
    """``(field, op, value)`` for each comparison of the supported subset (module docstring),
    all of which must hold; ``_BadRequest`` naming what is not supported."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if not text[pos:].strip():
            break
        match = _FILTER_TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise _BadRequest(f"filter: cannot parse {text[pos:pos + 20]!r}")
        kind = match.lastgroup or "word"
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    comparisons: list[_Comparison] = []
    index = 0
    while index < len(tokens):
        kind, value = tokens[index]
        if kind == "word" and value == "AND":
            index += 1
            continue
        if kind == "paren":
            raise _BadRequest("filter: parentheses are not supported by this fake server")
        if kind == "word" and value in ("OR", "NOT"):
            raise _BadRequest(f"filter: {value} is not supported by this fake server")
        if kind != "word" or index + 1 >= len(tokens) or tokens[index + 1][0] != "op":
            raise _BadRequest(
                f"filter: {value!r} is not a comparison FIELD OP VALUE (global terms and "
                "functions are not supported by this fake server)"
            )
        if value.startswith("-"):
            raise _BadRequest("filter: negation (-) is not supported by this fake server")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_\-]+)*", value):
            raise _BadRequest(f"filter: field path {value!r} is not supported by this fake "
                              "server (quoted segments, indexes, functions)")
        op = tokens[index + 1][1]
        if op in ("=~", "!~"):
            raise _BadRequest("filter: regular expressions are not supported by this fake server")
        if index + 2 >= len(tokens) or tokens[index + 2][0] not in ("string", "word"):
            raise _BadRequest(f"filter: {value} {op} needs a value")
        vkind, raw = tokens[index + 2]
        if vkind == "string":
            try:
                operand: Any = json.loads(raw)
            except ValueError:
                raise _BadRequest(f"filter: bad string {raw}") from None
        elif raw in ("AND", "OR", "NOT"):
            raise _BadRequest(f"filter: {value} {op} needs a value")
        else:
            operand = raw
        if value in _TIME_FIELDS and not (op == ":" and operand == "*"):
            moment = _filter_time(str(operand))
            if moment is None:
                raise _BadRequest(f"filter: {value}: invalid timestamp {operand!r}")
            operand = moment
        comparisons.append((value, op, operand))
        index += 3
    return comparisons


def _field(entry: Mapping[str, Any], path: str) -> Any:
    value: Any = entry
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _compare(have: Any, op: str, want: Any, path: str) -> bool:
    if have is None:
        return op == "!="
    if op == ":" and want == "*":
        return True
    if path in _TIME_FIELDS:
        moment = _filter_time(str(have))
        if moment is None:
            return op == "!="
        left: Any = moment
        right: Any = want
    elif path == "severity":
        left = _SEVERITY_RANK.get(str(have).upper(), have if isinstance(have, int) else 0)
        right = _SEVERITY_RANK.get(str(want).upper())
        if right is None:
            try:
                right = int(str(want))
            except ValueError:
                raise _BadRequest(f"filter: severity: invalid value {want!r}") from None
    else:
        if isinstance(have, (dict, list)):
            have = json.dumps(have)
        left, right = str(have).lower(), str(want).lower()
        if op == ":":
            return right in left
        try:
            numbers = float(left), float(right)
        except ValueError:
            pass
        else:
            if op not in ("=", "!="):
                left, right = numbers
    if op == ":":
        return bool(left == right)
    return bool({
        "=": left == right, "!=": left != right, "<": left < right, "<=": left <= right,
        ">": left > right, ">=": left >= right,
    }[op])


def _listed_time(entry: Mapping[str, Any]) -> datetime:
    moment = _filter_time(str(entry.get("timestamp") or entry.get("receiveTimestamp") or ""))
    return moment or datetime.min.replace(tzinfo=timezone.utc)


class _Fault:
    __slots__ = ("bad", "http", "message", "retry_after")

    def __init__(
        self,
        http: int = 0,
        message: str = "",
        retry_after: float | None = None,
        bad: dict[int, tuple[int, str]] | None = None,
    ) -> None:
        self.http = http
        self.message = message
        self.retry_after = retry_after
        self.bad = bad


class FakeCloudLogging:
    """The fake server, running in a daemon thread of this process. Thread-safe accessors."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._entries: list[dict[str, Any]] = []
        self._requests: list[dict[str, Any]] = []
        self._lists: list[dict[str, Any]] = []
        self._faults: deque[_Fault] = deque()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> FakeCloudLogging:
        if self._server is not None:
            return self
        server = ThreadingHTTPServer((self._host, self._port), _handler_class(self))
        server.daemon_threads = True
        server.block_on_close = False  # keep-alive connections must not hold stop() up
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05},
            name="fake-cloud-logging", daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> FakeCloudLogging:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the fake Cloud Logging server is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL for ``api_endpoint`` (``http://127.0.0.1:PORT``)."""
        return f"http://{self._host}:{self.port}"

    # -- assertions ----------------------------------------------------------------------------

    def entries(self) -> list[dict[str, Any]]:
        """Stored entries in arrival order, with logName/resource/labels defaults applied."""
        with self._lock:
            return copy.deepcopy(self._entries)

    def insert_ids(self) -> list[str | None]:
        with self._lock:
            return [e.get("insertId") for e in self._entries]

    def requests(self) -> list[dict[str, Any]]:
        """Every write received: ``status``, ``bytes``, ``entries`` (count), ``insert_ids``,
        ``written`` (indices stored), ``partial_success``, ``authorization`` (sent or not),
        ``user_agent``, and the parsed ``body`` (None when it was not JSON)."""
        with self._lock:
            return copy.deepcopy(self._requests)

    def list_requests(self) -> list[dict[str, Any]]:
        """Every ``entries.list`` received: ``status``, the parsed ``body`` (None when it was
        not JSON; its ``filter`` is what the caller asked), ``returned`` (entries on the page)."""
        with self._lock:
            return copy.deepcopy(self._lists)

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        """Wait until at least ``count`` entries are stored; False if ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self._entries) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
            return True

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> bool:
        """Wait until at least ``count`` writes were answered (of any outcome)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self._requests) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
            return True

    def clear(self) -> None:
        """Forget stored entries, recorded requests and pending faults."""
        with self._lock:
            self._entries.clear()
            self._requests.clear()
            self._lists.clear()
            self._faults.clear()
            self._changed.notify_all()

    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults)

    # -- fault injection -----------------------------------------------------------------------

    def fail_next(
        self,
        n: int = 1,
        status: int = 429,
        message: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Answer the next ``n`` writes with HTTP ``status`` (e.g. 429, 500, 503, 401, 403)."""
        if not 400 <= status <= 599:
            raise ValueError(f"status must be an HTTP error status, got {status}")
        code = _HTTP_TO_CODE.get(status, 2)
        text = message or f"Injected failure: {_NAMES.get(code, 'UNKNOWN')}"
        with self._lock:
            self._faults.extend(_Fault(status, text, retry_after) for _ in range(n))

    def partial_next(
        self,
        n: int = 1,
        bad_indices: Mapping[int, int | str] | None = None,
        message: str | None = None,
    ) -> None:
        """Fail the entries at ``bad_indices`` (index → google.rpc code or name) of the next
        ``n`` writes; the other entries are stored when the request asked for partialSuccess."""
        bad = {
            int(i): (_code_of(code), message or f"Injected entry error: {_NAMES[_code_of(code)]}")
            for i, code in (bad_indices or {0: "UNAVAILABLE"}).items()
        }
        if any(code == 0 for code, _ in bad.values()):
            raise ValueError("an entry error cannot have code OK")
        with self._lock:
            self._faults.extend(_Fault(bad=dict(bad)) for _ in range(n))

    # -- the service ---------------------------------------------------------------------------

    def _handle_write(
        self, raw: bytes, headers: Mapping[str, str]
    ) -> tuple[int, bytes, dict[str, str]]:
        record: dict[str, Any] = {
            "bytes": len(raw),
            "authorization": "authorization" in {k.lower() for k in headers},
            "user_agent": headers.get("User-Agent"),
            "content_type": headers.get("Content-Type"),
            "body": None,
            "entries": 0,
            "insert_ids": [],
            "written": [],
            "partial_success": False,
        }
        status, body, extra, stored = self._answer(raw, headers, record)
        record["status"] = status
        with self._lock:
            self._entries.extend(stored)
            self._requests.append(record)
            self._changed.notify_all()
        return status, body, extra

    def _answer(
        self, raw: bytes, headers: Mapping[str, str], record: dict[str, Any]
    ) -> tuple[int, bytes, dict[str, str], list[dict[str, Any]]]:
        if len(raw) > MAX_REQUEST_BYTES:
            return 400, _error_body(
                400, 3, f"Request payload size exceeds the limit: {MAX_REQUEST_BYTES} bytes."
            ), {}, []
        ctype = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            return 400, _error_body(400, 3, f"Unsupported Content-Type {ctype!r}"), {}, []
        try:
            body, sizes = _load(raw)
        except (UnicodeDecodeError, ValueError) as exc:
            return 400, _error_body(400, 3, f"Invalid JSON payload received. {exc}"), {}, []
        record["body"] = body
        try:
            entries, partial, dry = self._parse(body)
        except _BadRequest as exc:
            return 400, _error_body(400, 3, f"Invalid JSON payload received. {exc}"), {}, []
        record["entries"] = len(entries)
        record["insert_ids"] = [e.get("insertId") for e in entries]
        record["partial_success"] = partial
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
        if fault is not None and fault.bad is None:
            extra = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after else {}
            code = _HTTP_TO_CODE.get(fault.http, 2)
            return fault.http, _error_body(fault.http, code, fault.message), extra, []
        errors: dict[int, tuple[int, str]] = {}
        resolved = []
        # One clock reading per request (as the service stamps a request as it receives it).
        now = datetime.now(timezone.utc)
        received = now.isoformat(timespec="microseconds").replace("+00:00", "Z")
        if sizes is not None and len(sizes) != len(entries):
            sizes = None
        for index, entry in enumerate(entries):
            size = sizes[index] if sizes is not None else None
            full, problem = self._resolve(body, entry, now=now, received=received, size=size)
            resolved.append(full)
            if problem:
                errors[index] = (3, problem)
        if fault is not None and fault.bad:
            for index, value in fault.bad.items():
                if 0 <= index < len(entries):
                    errors.setdefault(index, value)
        written = [] if (errors and not partial) or dry else [
            i for i in range(len(entries)) if i not in errors
        ]
        record["written"] = written
        stored = [resolved[i] for i in written]
        if not errors:
            return 200, b"{}", {}, stored
        first = min(errors)
        code, message = errors[first]
        http = _CODE_TO_HTTP.get(code, 500)
        detail = {
            "@type": PARTIAL_ERRORS_TYPE,
            "logEntryErrors": {
                str(i): {"code": c, "message": m} for i, (c, m) in sorted(errors.items())
            },
        }
        return http, _error_body(http, code, message, [detail]), {}, stored

    @staticmethod
    def _parse(body: Any) -> tuple[list[dict[str, Any]], bool, bool]:
        if not isinstance(body, dict):
            raise _BadRequest("the body must be a JSON object")
        for key in body:
            if key not in _REQUEST_FIELDS:
                raise _BadRequest(f'Unknown name "{key}": Cannot find field.')
        entries = body.get("entries")
        if not isinstance(entries, list) or not entries:
            raise _BadRequest("entries: at least one log entry is required")
        _check_labels("labels", body.get("labels"))
        _check_resource("resource", body.get("resource"))
        for index, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise _BadRequest(f"entries[{index}]: a log entry must be an object")
            if not entry.keys() <= _ENTRY_FIELDS:
                key = next(k for k in entry if k not in _ENTRY_FIELDS)
                raise _BadRequest(
                    f'Unknown name "{key}" at \'entries[{index}]\': Cannot find field.'
                )
            if len(entry.keys() & _PAYLOADS) > 1:
                raise _BadRequest(f"entries[{index}]: more than one payload")
            severity = entry.get("severity")
            if severity is not None and severity not in _SEVERITIES and not (
                isinstance(severity, int) and severity in _SEVERITY_NUMBERS
            ):
                raise _BadRequest(f"entries[{index}].severity: invalid value {severity!r}")
            timestamp = entry.get("timestamp")
            if timestamp is not None and (
                not isinstance(timestamp, str) or _parse_timestamp(timestamp) is None
            ):
                raise _BadRequest(f"entries[{index}].timestamp: invalid value {timestamp!r}")
            labels = entry.get("labels")
            if labels is not None:
                _check_labels(f"entries[{index}].labels", labels)
            resource = entry.get("resource")
            if resource is not None:
                _check_resource(f"entries[{index}].resource", resource)
            if "jsonPayload" in entry and not isinstance(entry["jsonPayload"], dict):
                raise _BadRequest(f"entries[{index}].jsonPayload: must be an object")
        partial = bool(body.get("partialSuccess", body.get("partial_success", False)))
        dry = bool(body.get("dryRun", body.get("dry_run", False)))
        return entries, partial, dry

    @staticmethod
    def _resolve(
        body: dict[str, Any],
        entry: dict[str, Any],
        now: datetime | None = None,
        received: str | None = None,
        size: int | None = None,
    ) -> tuple[dict[str, Any], str | None]:
        """The entry as stored (request defaults applied), and its per-entry problem if any.

        ``size``: the entry's size as sent; measured as compact JSON when not given."""
        if now is None:
            now = datetime.now(timezone.utc)
        if received is None:
            received = now.isoformat(timespec="microseconds").replace("+00:00", "Z")
        full = dict(entry)
        log_name = entry.get("logName", body.get("logName"))
        resource = entry.get("resource", body.get("resource"))
        if log_name is not None:
            full["logName"] = log_name
        if resource is not None:
            full["resource"] = resource
        request_labels, entry_labels = body.get("labels"), entry.get("labels")
        if request_labels or entry_labels:
            labels = dict(request_labels or {})
            labels.update(entry_labels or {})
            full["labels"] = labels
        full["receiveTimestamp"] = received
        if not isinstance(log_name, str):
            return full, "logName is required"
        project = _project_of(log_name)
        if project is None:
            return full, f"Invalid log name {log_name!r}: use projects/PROJECT/logs/LOG_ID"
        request_name = body.get("logName")
        if isinstance(request_name, str):
            request_project = _project_of(request_name)
            if request_project is not None and request_project != project:
                return full, "Log entries of one request must belong to one project"
        if resource is None:
            return full, "resource is required"
        if size is None:
            size = len(_compact_json(entry).encode())
        if size > MAX_ENTRY_BYTES:
            return full, (
                f"Log entry with size {size / 1024:.1f}K exceeds maximum size of "
                f"{MAX_ENTRY_BYTES / 1024:.1f}K"
            )
        timestamp = entry.get("timestamp")
        if isinstance(timestamp, str):
            moment = _parse_timestamp(timestamp)
            if moment is not None and (
                moment < now - _TOO_OLD or moment > now + _TOO_NEW
            ):
                return full, f"Log entry timestamp {timestamp} is outside the accepted range"
        return full, None

    def _handle_list(self, raw: bytes) -> tuple[int, bytes]:
        record: dict[str, Any] = {"body": None, "returned": 0}
        try:
            body = json.loads(raw.decode("utf-8") or "null")
        except (UnicodeDecodeError, ValueError) as exc:
            status, answer = 400, _error_body(400, 3, f"Invalid JSON payload received. {exc}")
        else:
            record["body"] = body
            try:
                page = self._list(body)
            except _BadRequest as exc:
                status, answer = 400, _error_body(400, 3, str(exc))
            else:
                record["returned"] = len(page.get("entries", []))
                status, answer = 200, json.dumps(page).encode()
        record["status"] = status
        with self._lock:
            self._lists.append(record)
        return status, answer

    def _list(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _BadRequest("Invalid JSON payload received. the body must be a JSON object")
        for key in body:
            if key not in _LIST_FIELDS:
                raise _BadRequest(f'Invalid JSON payload received. Unknown name "{key}": Cannot '
                                  "find field (this fake server answers resourceNames only).")
        names = body.get("resourceNames")
        if not isinstance(names, list) or not names:
            raise _BadRequest("resourceNames: at least one resource name is required")
        projects = set()
        for name in names:
            parts = str(name).split("/")
            if len(parts) != 2 or parts[0] != "projects" or not parts[1]:
                raise _BadRequest(f"resourceNames: {name!r} is not supported by this fake "
                                  "server (give projects/PROJECT)")
            projects.add(parts[1])
        comparisons = _parse_filter(str(body.get("filter") or ""))
        order = " ".join(str(body.get("orderBy") or "timestamp asc").split()).lower()
        if order not in ("timestamp", "timestamp asc", "timestamp desc"):
            raise _BadRequest(f"orderBy: {body.get('orderBy')!r}: use \"timestamp asc\" or "
                              "\"timestamp desc\"")
        size = body.get("pageSize", 50)
        if isinstance(size, str) and size.isdigit():
            size = int(size)  # protobuf JSON may write int32 as a string
        if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= 1000:
            raise _BadRequest(f"pageSize: {size!r}: must be between 0 and 1000")
        size = size or 50
        token = body.get("pageToken") or ""
        query = json.dumps([sorted(projects), body.get("filter") or "", order])
        tag = f"fake-{zlib.crc32(query.encode()):08x}"  # a token is for its own query only
        start = 0
        if token:
            prefix, _, offset = str(token).rpartition(":")
            if prefix != tag or not offset.isdigit():
                raise _BadRequest("pageToken: not a token of this request's previous page")
            start = int(offset)
        with self._lock:
            stored = list(self._entries)
        found = []
        for entry in stored:
            project = _project_of(str(entry.get("logName", "")))
            if project not in projects:
                continue
            if all(_compare(_field(entry, f) if f != "timestamp" else (
                    entry.get("timestamp") or entry.get("receiveTimestamp")), op, want, f)
                   for f, op, want in comparisons):
                found.append(entry)
        found.sort(key=_listed_time, reverse=order.endswith("desc"))
        page_entries = []
        for entry in found[start:start + size]:
            listed = copy.deepcopy(entry)
            listed.setdefault("timestamp", listed.get("receiveTimestamp"))
            page_entries.append(listed)
        page: dict[str, Any] = {"entries": page_entries} if page_entries else {}
        if start + size < len(found):
            page["nextPageToken"] = f"{tag}:{start + size}"
        return page

    # -- control paths for RemoteFakeCloudLogging ---------------------------------------------

    def _control(self, method: str, path: str, query: dict[str, str], raw: bytes) -> Any:
        args = json.loads(raw.decode() or "{}") if raw else {}
        if method == "GET" and path == "/_fake/entries":
            return self.entries()
        if method == "GET" and path == "/_fake/requests":
            return self.requests()
        if method == "GET" and path == "/_fake/list_requests":
            return self.list_requests()
        if method == "GET" and path == "/_fake/wait":
            ok = self.wait_for(int(query.get("count", "0")), float(query.get("timeout", "10")))
            return {"ok": ok}
        if method == "POST" and path == "/_fake/fail_next":
            self.fail_next(**args)
            return {}
        if method == "POST" and path == "/_fake/partial_next":
            bad = {int(k): v for k, v in (args.pop("bad_indices", None) or {}).items()}
            self.partial_next(bad_indices=bad or None, **args)
            return {}
        if method == "POST" and path == "/_fake/clear":
            self.clear()
            return {}
        raise KeyError(path)


def _check_labels(where: str, labels: Any) -> None:
    if labels is None:
        return
    if not isinstance(labels, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
    ):
        raise _BadRequest(f"{where}: labels must map strings to strings")


def _check_resource(where: str, resource: Any) -> None:
    if resource is None:
        return
    if not isinstance(resource, dict) or not isinstance(resource.get("type"), str):
        raise _BadRequest(f"{where}: a monitored resource needs a type")
    _check_labels(f"{where}.labels", resource.get("labels"))


def _handler_class(fake: FakeCloudLogging) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the client's session expects
        # Headers and body go out in two writes: without TCP_NODELAY the body waits ~40 ms for
        # the client's delayed ACK on every response (found by the benchmarks).
        disable_nagle_algorithm = True

        def _read(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length > 0 else b""

        def _send(self, status: int, body: bytes, extra: Mapping[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(body)))
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def _dispatch(self, method: str) -> None:
            parts = urllib.parse.urlsplit(self.path)
            raw = self._read()
            if parts.path.startswith("/_fake/"):
                query = dict(urllib.parse.parse_qsl(parts.query))
                try:
                    result = fake._control(method, parts.path, query, raw)
                except KeyError:
                    self._send(404, _error_body(404, 5, f"no control path {parts.path}"))
                    return
                except (TypeError, ValueError) as exc:
                    self._send(400, _error_body(400, 3, str(exc)))
                    return
                self._send(200, json.dumps(result).encode())
                return
            if parts.path == _LIST_PATH and method == "POST":
                status, answer = fake._handle_list(raw)
                self._send(status, answer)
                return
            if parts.path not in (_WRITE_PATH, _LIST_PATH):
                message = f"The requested URL {parts.path} was not found."
                self._send(404, _error_body(404, 5, message))
                return
            if method != "POST":
                self._send(405, _error_body(405, 3, f"Method {method} not allowed."))
                return
            headers = {key: value for key, value in self.headers.items()}
            status, body, extra = fake._handle_write(raw, headers)
            self._send(status, body, extra)

        def do_POST(self) -> None:
            self._dispatch("POST")

        def do_GET(self) -> None:
            self._dispatch("GET")

        def do_PUT(self) -> None:
            self._dispatch("PUT")

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: tests read requests(), not access logs

    return Handler


class RemoteFakeCloudLogging:
    """Drive a fake server running in another process (``python -m ...gcp_server``) by URL."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def _call(self, method: str, path: str, payload: Any = None, timeout: float = 30.0) -> Any:
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(
            self.url + path, data=data, method=method,
            headers={"Content-Type": "application/json"} if data is not None else {},
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read().decode() or "null")

    def entries(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/_fake/entries")
        return result

    def insert_ids(self) -> list[str | None]:
        return [e.get("insertId") for e in self.entries()]

    def requests(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/_fake/requests")
        return result

    def list_requests(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/_fake/list_requests")
        return result

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        query = urllib.parse.urlencode({"count": count, "timeout": timeout})
        return bool(self._call("GET", f"/_fake/wait?{query}", timeout=timeout + 10)["ok"])

    def fail_next(
        self, n: int = 1, status: int = 429, message: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self._call("POST", "/_fake/fail_next",
                   {"n": n, "status": status, "message": message, "retry_after": retry_after})

    def partial_next(
        self, n: int = 1, bad_indices: Mapping[int, int | str] | None = None,
        message: str | None = None,
    ) -> None:
        bad = {str(k): v for k, v in (bad_indices or {}).items()}
        self._call("POST", "/_fake/partial_next", {"n": n, "bad_indices": bad, "message": message})

    def clear(self) -> None:
        self._call("POST", "/_fake/clear", {})


def flush_gcp(timeout: float = 30.0) -> bool:
    """Wait until this process's Cloud Logging handlers delivered (or spilled) what they hold.

    Dagster builds loggers inside a run and never hands them back, so a test cannot call
    ``handler.flush()``; this flushes every Cloud Logging worker alive in this process.
    Returns False if ``timeout`` passed first.
    """
    from ..shipping.lifecycle import registered_workers
    from ..sinks.gcp import GcpSink

    deadline = time.monotonic() + timeout
    done = True
    for worker in registered_workers():
        if isinstance(worker.sink, GcpSink):
            done = worker.flush(max(0.0, deadline - time.monotonic())) and done
    return done


def main(argv: list[str] | None = None) -> int:
    """Run the fake server until SIGTERM/SIGINT; print its URL as the first line."""
    parser = argparse.ArgumentParser(
        prog="python -m dagster_logship.testing.gcp_server",
        description="A fake Google Cloud Logging endpoint (POST /v2/entries:write and "
        "/v2/entries:list) for tests.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(argv)
    stop = threading.Event()

    def _stop(*_: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    with FakeCloudLogging(args.host, args.port) as server:
        print(server.url, flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
