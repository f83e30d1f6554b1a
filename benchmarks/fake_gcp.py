"""The project's fake Cloud Logging server, trimmed for long benchmark runs.

``dagster_logship.testing.FakeCloudLogging`` parses and checks every request and entry as the real
service would (that work stays, so both clients are measured against the same server); this
subclass only stops it from *keeping* what it received (entries, request bodies), which would grow
to gigabytes over a run, and counts instead: entries stored per log name, and entries per request.

Control paths, besides the fake's own ``/_fake/...``:
  GET  /_fake/bench_stats?log=NAME                  {"entries", "requests", "per_request"}
  GET  /_fake/bench_wait?log=NAME&count=N&timeout=S {"ok": bool, "entries": n}
  POST /_fake/bench_reset

Run: ``python benchmarks/fake_gcp.py [--port N]`` prints its URL on the first line.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any

from server_tuning import calm_collector

from dagster_logship.testing import FakeCloudLogging

NODELAY = True


class CountingFakeCloudLogging(FakeCloudLogging):
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self._counts: dict[str, int] = {}
        self._per_request: dict[str, list[int]] = {}

    def start(self) -> CountingFakeCloudLogging:
        super().start()
        if NODELAY and self._server is not None:
            # The fake writes headers and body separately; without TCP_NODELAY Nagle holds the
            # body until the client's delayed ACK, 40 ms per request on Linux (a stall of the
            # test server, not of any client). The handler class is this server's own.
            self._server.RequestHandlerClass.disable_nagle_algorithm = True  # type: ignore[attr-defined]
        return self

    def _answer(
        self, raw: bytes, headers: Mapping[str, str], record: dict[str, Any]
    ) -> tuple[int, bytes, dict[str, str], list[dict[str, Any]]]:
        status, body, extra, stored = super()._answer(raw, headers, record)  # type: ignore[misc]
        names: dict[str, int] = {}
        for entry in stored:
            log = urllib.parse.unquote(str(entry.get("logName", "")).rpartition("/")[2])
            names[log] = names.get(log, 0) + 1
        record["body"] = None  # keep nothing big
        record["insert_ids"] = []
        record["written"] = []
        with self._lock:
            for log, n in names.items():
                self._counts[log] = self._counts.get(log, 0) + n
                self._per_request.setdefault(log, []).append(n)
            if len(self._requests) > 1000:
                del self._requests[:]
        return status, body, extra, []

    def _control(self, method: str, path: str, query: dict[str, str], raw: bytes) -> Any:
        log = query.get("log", "")
        if method == "GET" and path == "/_fake/bench_stats":
            with self._lock:
                per = list(self._per_request.get(log, []))
                return {"entries": self._counts.get(log, 0), "requests": len(per),
                        "per_request": per}
        if method == "GET" and path == "/_fake/bench_wait":
            count = int(query.get("count", "0"))
            deadline = time.monotonic() + min(float(query.get("timeout", "10")), 600.0)
            with self._lock:
                while True:
                    have = self._counts.get(log, 0)
                    remaining = deadline - time.monotonic()
                    if have >= count or remaining <= 0:
                        return {"ok": have >= count, "entries": have}
                    self._changed.wait(remaining)
        if method == "POST" and path == "/_fake/bench_reset":
            with self._lock:
                self._counts.clear()
                self._per_request.clear()
                del self._requests[:]
                del self._entries[:]
            return {}
        return super()._control(method, path, query, raw)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--nagle", action="store_true", help="keep the fake's 40 ms stall")
    args = parser.parse_args(argv)
    calm_collector()
    global NODELAY
    NODELAY = not args.nagle
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with CountingFakeCloudLogging("127.0.0.1", args.port) as server:
        print(server.url, flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
