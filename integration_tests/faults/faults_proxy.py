"""A loopback HTTP proxy that injects the faults of a real network and service between our real
clients (boto3 / google-cloud-logging) and a real server (moto, the fake Cloud Logging server),
or, without an upstream, answers CloudWatch Logs itself under an account-wide request quota.

Why a proxy rather than botocore hooks: the faults then reach the clients as bytes on a socket —
botocore parses the error bodies, urllib3/requests see connections reset or stalled — so the
code paths under test are the ones production takes.

Every exchange is recorded (:class:`Exchange`): which operation, what the proxy did, what the
upstream answered and what the client got, and the record ids the request carried (our test
``rid`` extra, else Dagster's ``log_message_id``; the ``insertId`` for Cloud Logging). That log
is the ground truth the tests assert on: a batch "accepted" is one the upstream answered 2xx,
whatever the client was told.
"""

from __future__ import annotations

import collections
import http.client
import json
import random
import socket
import struct
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO
from typing import Any

__all__ = ["Action", "Exchange", "FaultProxy", "TokenBucket"]

_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer",
     "upgrade", "content-length", "host"}
)


@dataclass(frozen=True)
class Action:
    """What the proxy does with one request.

    kind: ``pass`` (forward), ``throttle`` (the service's throttling answer, not forwarded),
    ``error`` (a 5xx, not forwarded), ``auth`` (credentials refused, not forwarded), ``reset``
    (connection reset before the service saw it), ``drop`` (forwarded and accepted, then the
    connection is reset: the answer is lost), ``stall`` (forwarded and accepted, then no answer
    for ``seconds``: the client times out), ``delay`` (wait ``seconds``, then forward: a slow
    service).
    """

    kind: str = "pass"
    seconds: float = 0.0
    status: int = 0
    code: str = ""
    message: str = ""


PASS = Action()


@dataclass
class Exchange:
    """One request as the proxy handled it."""

    t: float
    op: str
    action: str
    ids: list[str]
    upstream_status: int | None = None
    client_status: int | None = None  # None: the client got no answer (reset, stall)
    t_end: float = 0.0

    @property
    def accepted(self) -> bool:
        return self.upstream_status is not None and 200 <= self.upstream_status < 300

    @property
    def answer_lost(self) -> bool:
        """The service saw the request (and may have stored some or all of it), the client
        never got its answer."""
        return self.upstream_status is not None and self.client_status is None


class TokenBucket:
    """An account-wide request quota: ``rate`` requests per second, bursts of ``burst``."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._t = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._t) * self.rate)
            self._t = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            return False


@dataclass
class _Plan:
    scripts: dict[str, collections.deque[Action]] = field(
        default_factory=lambda: collections.defaultdict(collections.deque)
    )
    decide: Callable[[str, int], Action | None] | None = None
    quota: TokenBucket | None = None
    counts: collections.Counter[str] = field(default_factory=collections.Counter)


def _aws_op(headers: Any) -> str:
    target = headers.get("X-Amz-Target") or ""
    return target.rsplit(".", 1)[-1] or "unknown"


def _ids_of(op: str, body: bytes) -> list[str]:
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return []
    out: list[str] = []
    if op == "PutLogEvents":
        for event in payload.get("logEvents", []):
            try:
                message = json.loads(event.get("message", ""))
            except ValueError:
                continue
            rid = message.get("rid") or message.get("log_message_id")
            if rid is None:
                continue
            part = message.get("part")
            out.append(f"{rid}#{part['index']}" if isinstance(part, dict) else str(rid))
    elif op == "entries.write":
        for entry in payload.get("entries", []):
            if entry.get("insertId"):
                out.append(str(entry["insertId"]))
    return out


class FaultProxy:
    """The proxy, serving on ``127.0.0.1`` from daemon threads of this process.

    ``protocol`` is ``aws`` (CloudWatch Logs JSON 1.1) or ``gcp`` (Cloud Logging REST): it says
    how operations are named and how injected errors are worded. With ``upstream=None`` (aws
    only) the proxy is the service: it stores what PutLogEvents carries (see :attr:`stored`).
    """

    def __init__(self, upstream: str | None, protocol: str = "aws") -> None:
        if upstream is None and protocol != "aws":
            raise ValueError("only the CloudWatch stub can run without an upstream")
        self.protocol = protocol
        self.upstream = urllib.parse.urlsplit(upstream) if upstream else None
        self.exchanges: list[Exchange] = []
        self.stored: list[str] = []  # ids stored by the built-in stub
        self.plan = _Plan()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._local = threading.local()
        handler = _handler_class(self)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._server.handle_error = lambda request, address: None  # type: ignore[method-assign]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True,
            name="fault-proxy",
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the plan ------------------------------------------------------------------------------

    def script(self, op: str, actions: Iterable[Action]) -> None:
        """The next requests of ``op`` get these actions, in order (then the rest of the plan)."""
        with self._lock:
            self.plan.scripts[op].extend(actions)

    def storm(self, op: str, n: int, share: float, action: Action, seed: int = 6) -> None:
        """The next ``n`` requests of ``op``: a share of them (seeded) get ``action``."""
        rng = random.Random(seed)
        self.script(op, [action if rng.random() < share else PASS for _ in range(n)])

    def decide(self, fn: Callable[[str, int], Action | None] | None) -> None:
        """``fn(op, n)`` chooses for requests no script covers (``n``: the op's request index)."""
        with self._lock:
            self.plan.decide = fn

    def quota(self, bucket: TokenBucket | None) -> None:
        """PutLogEvents / entries.write above the bucket's rate are throttled."""
        with self._lock:
            self.plan.quota = bucket

    def pending(self, op: str) -> int:
        with self._lock:
            return len(self.plan.scripts[op])

    def _choose(self, op: str) -> Action:
        with self._lock:
            n = self.plan.counts[op]
            self.plan.counts[op] += 1
            script = self.plan.scripts.get(op)
            if script:
                return script.popleft()
            decide, bucket = self.plan.decide, self.plan.quota
        if bucket is not None and op in ("PutLogEvents", "entries.write") and not bucket.take():
            return Action("throttle")
        if decide is not None:
            chosen = decide(op, n)
            if chosen is not None:
                return chosen
        return PASS

    # -- the log -------------------------------------------------------------------------------

    def log(self, op: str | None = None) -> list[Exchange]:
        with self._lock:
            return [e for e in self.exchanges if op is None or e.op == op]

    def _begin(self, exchange: Exchange) -> None:
        """Exchanges are logged when they arrive and updated in place, so that a batch the
        service accepted counts as such at once, even while its answer is being stalled."""
        with self._lock:
            self.exchanges.append(exchange)

    def _update(self, exchange: Exchange, **changes: Any) -> None:
        with self._lock:
            for key, value in changes.items():
                setattr(exchange, key, value)
            self._changed.notify_all()

    def wait(self, predicate: Callable[[list[Exchange]], bool], timeout: float) -> bool:
        """Wait until ``predicate(exchanges)`` holds; False if ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not predicate(self.exchanges):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
            return True

    def accepted_ids(self, op: str = "PutLogEvents") -> list[str]:
        """Every id the service accepted, once per acceptance (duplicates show)."""
        return [i for e in self.log(op) if e.accepted for i in e.ids]

    def lost_answer_ids(self, op: str = "PutLogEvents") -> set[str]:
        """Ids of batches the service received but whose answer never reached the client."""
        return {i for e in self.log(op) if e.answer_lost for i in e.ids}

    # -- forwarding ----------------------------------------------------------------------------

    def _forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        if self.upstream is None:
            return self._stub(headers, body)
        conn = getattr(self._local, "conn", None)
        for attempt in range(2):  # a kept-alive upstream connection may have been closed
            if conn is None:
                conn = http.client.HTTPConnection(
                    self.upstream.hostname, self.upstream.port, timeout=30
                )
                self._local.conn = conn
            try:
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                return response.status, response.getheaders(), data
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = self._local.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _stub(
        self, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        op = _aws_op(headers)
        if op == "PutLogEvents":
            ids = _ids_of(op, body)
            with self._lock:
                self.stored.extend(ids)
            data = b'{"nextSequenceToken":"1"}'
        else:
            data = b"{}"
        return 200, [("Content-Type", "application/x-amz-json-1.1")], data

    # -- injected answers ------------------------------------------------------------------------

    def _error(self, action: Action) -> tuple[int, list[tuple[str, str]], bytes]:
        if self.protocol == "aws":
            status, code, message = {
                "throttle": (400, "ThrottlingException", "Rate exceeded"),
                "error": (503, "ServiceUnavailableException", "The service is unavailable"),
                "auth": (400, "UnrecognizedClientException",
                         "The security token included in the request is invalid."),
            }[action.kind]
            status = action.status or status
            code = action.code or code
            message = action.message or message
            body = json.dumps({"__type": code, "message": message}).encode()
            return status, [("Content-Type", "application/x-amz-json-1.1"),
                            ("x-amzn-RequestId", "fault-proxy"),
                            ("x-amzn-ErrorType", code)], body
        status, name, message = {
            "throttle": (429, "RESOURCE_EXHAUSTED", "Quota exceeded for quota metric 'Write "
                         "requests' and limit 'Write requests per minute'"),
            "error": (503, "UNAVAILABLE", "The service is currently unavailable."),
            "auth": (403, "PERMISSION_DENIED", "Permission 'logging.logEntries.create' denied"),
        }[action.kind]
        status = action.status or status
        body = json.dumps({"error": {"code": status, "message": message, "status": name}})
        return status, [("Content-Type", "application/json; charset=UTF-8")], body.encode()


def _reset(connection: socket.socket) -> None:
    """Close with RST: the client sees 'connection reset by peer', not a clean end."""
    try:
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        connection.close()
    except OSError:
        pass


def _handler_class(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _abort(self) -> None:
            _reset(self.connection)
            self.close_connection = True
            self.wfile = BytesIO()  # finish() must not write to the closed socket

        def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
            self.send_response(status)
            for key, value in headers:
                if key.lower() not in _HOP_BY_HOP and key.lower() not in ("date", "server"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()

        def _handle(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path = self.path
            if proxy.protocol == "aws":
                op = _aws_op(self.headers)
            else:
                op = "entries.write" if urllib.parse.urlsplit(path).path.endswith(
                    "entries:write") else urllib.parse.urlsplit(path).path
            action = proxy._choose(op)
            exchange = Exchange(time.monotonic(), op, action.kind, _ids_of(op, body))
            proxy._begin(exchange)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            try:
                if action.kind in ("throttle", "error", "auth"):
                    status, out_headers, data = proxy._error(action)
                    self._answer(status, out_headers, data)
                    proxy._update(exchange, client_status=status)
                    return
                if action.kind == "reset":
                    self._abort()
                    return
                if action.kind == "delay" and proxy._stop.wait(action.seconds):
                    self._abort()
                    return
                status, out_headers, data = proxy._forward(method, path, headers, body)
                proxy._update(exchange, upstream_status=status)
                if action.kind == "drop":
                    self._abort()
                    return
                if action.kind == "stall":
                    proxy._stop.wait(action.seconds)
                    self._abort()
                    return
                self._answer(status, out_headers, data)
                proxy._update(exchange, client_status=status)
            except OSError:
                self.close_connection = True
            finally:
                proxy._update(exchange, t_end=time.monotonic())

        def do_POST(self) -> None:
            self._handle("POST")

        def do_GET(self) -> None:
            self._handle("GET")

    return Handler
