"""Settings shared by the loopback servers of the benchmarks (never by a client measured)."""

from __future__ import annotations

import gc


def calm_collector() -> None:
    """Collect garbage far less often in this server process (a loopback server of the
    benchmarks, never a client measured): every request leaves thousands of parsed containers
    alive until it is answered, and the collections they set off, full ones included, took a
    quarter of the server's CPU. Nothing here makes reference cycles that must be collected
    soon. Both clients measured against a server get the same server."""
    gc.freeze()  # what is alive at start (modules, the server) is never scanned again
    gc.set_threshold(100_000, 50, 100)
