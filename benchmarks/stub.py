"""A minimal CloudWatch Logs endpoint for measuring clients, not servers.

A threaded HTTP/1.1 server on 127.0.0.1 that speaks the JSON 1.1 protocol botocore uses
(``POST /`` with ``X-Amz-Target: Logs_20140328.<Operation>``) and answers, with minimal valid
responses, the calls the measured clients make: PutLogEvents, CreateLogGroup, CreateLogStream,
DescribeLogStreams, DescribeLogGroups, PutRetentionPolicy, TagLogGroup/TagResource. It accepts
events for any group and stream (no existence checks, no validation beyond parsing the body): it
only counts, per stream, the events and requests it received and the bytes as CloudWatch counts
them (UTF-8 message bytes + 26 per event). moto does far more work per request, so against moto
the numbers would measure moto.

Control paths (plain JSON):
  GET  /_stub/stats?stream=NAME
       {"events", "requests", "per_request", "bytes", "bytes_per_request"}
  GET  /_stub/wait?stream=NAME&count=N&timeout=S   {"ok": bool, "events": n}
  POST /_stub/reset

Run: ``python benchmarks/stub.py [--port N]`` prints its URL on the first line, then serves
until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from server_tuning import calm_collector

_JSON11 = "application/x-amz-json-1.1"


class _Counts:
    __slots__ = ("bytes", "bytes_per_request", "events", "per_request")

    def __init__(self) -> None:
        self.events = 0
        self.bytes = 0
        self.per_request: list[int] = []
        self.bytes_per_request: list[int] = []


class Stub:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.streams: dict[str, _Counts] = {}

    def put(self, body: dict[str, Any]) -> dict[str, Any]:
        events = body.get("logEvents") or []
        nbytes = 0
        for event in events:
            nbytes += len(str(event.get("message", "")).encode("utf-8", "surrogatepass")) + 26
        stream = str(body.get("logStreamName"))
        with self.lock:
            counts = self.streams.get(stream)
            if counts is None:
                counts = self.streams[stream] = _Counts()
            counts.events += len(events)
            counts.bytes += nbytes
            counts.per_request.append(len(events))
            counts.bytes_per_request.append(nbytes)
            self.changed.notify_all()
        return {"nextSequenceToken": str(uuid.uuid4().int)}

    def stats(self, stream: str) -> dict[str, Any]:
        with self.lock:
            c = self.streams.get(stream) or _Counts()
            return {"events": c.events, "requests": len(c.per_request),
                    "per_request": list(c.per_request), "bytes": c.bytes,
                    "bytes_per_request": list(c.bytes_per_request)}

    def wait(self, stream: str, count: int, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + min(timeout, 600.0)
        with self.lock:
            while True:
                c = self.streams.get(stream)
                have = c.events if c else 0
                remaining = deadline - time.monotonic()
                if have >= count or remaining <= 0:
                    return {"ok": have >= count, "events": have}
                self.changed.wait(remaining)

    def operation(self, op: str, body: dict[str, Any]) -> dict[str, Any]:
        if op == "PutLogEvents":
            return self.put(body)
        if op == "DescribeLogStreams":
            prefix = body.get("logStreamNamePrefix") or "stream"
            return {"logStreams": [{
                "logStreamName": prefix,
                "creationTime": int(time.time() * 1000),
                "arn": f"arn:aws:logs:us-east-1:123456789012:log-group:"
                       f"{body.get('logGroupName')}:log-stream:{prefix}",
                "storedBytes": 0,
                "uploadSequenceToken": "1",
            }]}
        if op == "DescribeLogGroups":
            prefix = body.get("logGroupNamePrefix") or "/group"
            return {"logGroups": [{
                "logGroupName": prefix,
                "creationTime": int(time.time() * 1000),
                "arn": f"arn:aws:logs:us-east-1:123456789012:log-group:{prefix}:*",
                "storedBytes": 0,
            }]}
        # CreateLogGroup, CreateLogStream, PutRetentionPolicy, TagLogGroup, TagResource, ...
        return {}


def _handler(stub: Stub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body leave in two writes: without TCP_NODELAY, Nagle holds the body until
        # the client's delayed ACK (40 ms on Linux) and every request would take 40 ms.
        disable_nagle_algorithm = True

        def _send(self, status: int, payload: Any, ctype: str = _JSON11) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length > 0 else b""
            if self.path.startswith("/_stub/reset"):
                with stub.lock:
                    stub.streams.clear()
                self._send(200, {}, "application/json")
                return
            target = self.headers.get("X-Amz-Target") or ""
            op = target.rpartition(".")[2]
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                self._send(400, {"__type": "SerializationException", "message": "bad JSON"})
                return
            self._send(200, stub.operation(op, body))

        def do_GET(self) -> None:
            parts = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(parts.query))
            stream = query.get("stream", "")
            if parts.path == "/_stub/stats":
                self._send(200, stub.stats(stream), "application/json")
            elif parts.path == "/_stub/wait":
                result = stub.wait(stream, int(query.get("count", "0")),
                                   float(query.get("timeout", "10")))
                self._send(200, result, "application/json")
            else:
                self._send(404, {"message": "not found"}, "application/json")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def serve(port: int = 0) -> tuple[ThreadingHTTPServer, Stub]:
    stub = Stub()
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(stub))
    server.daemon_threads = True
    server.block_on_close = False
    return server, stub


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    calm_collector()  # the same server-side setting as the fake Cloud Logging server
    server, _ = serve(args.port)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              daemon=True)
    thread.start()
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
