"""The tailer's back-pressure (the file is the buffer) and the in-flight accounting behind it."""

from __future__ import annotations

import time
from itertools import pairwise
from pathlib import Path
from typing import Any

from dagster_logship.compute_logs.capture import InFlight
from dagster_logship.compute_logs.lines import READ_BYTES, Chunk
from dagster_logship.compute_logs.tailer import Tailer


def _big_file(path: Path) -> int:
    line = b"x" * 99 + b"\n"
    count = 3 * READ_BYTES // len(line)
    path.write_bytes(line * count)
    return count


def test_without_room_the_backlog_stays_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "out"
    count = _big_file(path)
    shipped: list[Chunk] = []
    room = {"open": True}

    def ship(_: str, chunk: Chunk) -> None:
        shipped.append(chunk)
        room["open"] = False  # full after the first read's pieces

    tailer = Tailer({"stdout": str(path)}, ship, interval=60, room=lambda _: room["open"])
    assert tailer.poll() is False
    first = len(shipped)
    assert 0 < first < count  # one read's worth (about READ_BYTES), not the whole file
    polls = 1
    while True:  # each poll, room for one more read: the reader goes on where it stopped
        room["open"] = True
        polls += 1
        if tailer.poll():
            break
    assert polls > 3 and len(shipped) == count
    assert all(b.offset == a.offset + a.length for a, b in pairwise(shipped))


def test_the_final_drain_waits_for_room_until_its_deadline(tmp_path: Path) -> None:
    path = tmp_path / "out"
    _big_file(path)
    tailer = Tailer({"stdout": str(path)}, lambda _n, _c: None, interval=60,
                    room=lambda _: False)
    started = time.monotonic()
    assert tailer.stop(deadline=started + 0.3) is False
    assert 0.3 <= time.monotonic() - started < 5
    assert tailer.positions()["stdout"] == 0


class _Handler:
    def __init__(self) -> None:
        self.stats: dict[str, Any] = {"enqueued": 0, "delivered": 0}


def test_in_flight_counts_what_is_not_yet_dealt_with() -> None:
    handler = _Handler()
    flight = InFlight(handler, max_bytes=1000, max_records=3)  # type: ignore[arg-type]
    for _ in range(2):
        flight.shipped(400)
        handler.stats["enqueued"] += 1
    assert flight.has_room()
    flight.shipped(400)
    handler.stats["enqueued"] += 1
    assert not flight.has_room()  # 1200 bytes out
    handler.stats["delivered"] = 2
    assert flight.has_room()  # 400 left
