"""Laying a captured stream out again from listed events (compute_logs/readback.py)."""

from __future__ import annotations

from typing import Any

from dagster_logship.compute_logs.readback import StreamCache, StreamState


def _event(offset: int, text: str, eol: bool = True) -> dict[str, Any]:
    length = len(text.encode()) + (1 if eol else 0)
    return {"offset": offset, "length": length, "message": text, "eol": eol}


def _state(*events: dict[str, Any]) -> StreamState:
    state = StreamState()
    for event in events:
        state.add_event(event)
    return state


def test_no_stream_reads_none() -> None:
    assert StreamState().read(0, None) == (None, 0)


def test_pieces_in_any_order_and_twice_read_once_in_order() -> None:
    state = _state(_event(4, "two"), _event(0, "one"), _event(4, "two"), _event(8, "end", False))
    assert state.read(0, None) == (b"one\ntwo\nend", 11)


def test_paging_by_max_bytes_cuts_exactly_and_resumes() -> None:
    state = _state(_event(0, "hello"), _event(6, "world"))
    pages, cursor = [], 0
    while True:
        data, cursor = state.read(cursor, 4)
        if not data:
            break
        assert len(data) <= 4
        pages.append(data)
    assert b"".join(pages) == b"hello\nworld\n" and cursor == 12


def test_a_hole_stops_the_read_until_the_capture_is_complete() -> None:
    state = _state(_event(0, "one"), _event(8, "three"))  # "two" (offset 4) still on its way
    assert state.read(0, None) == (b"one\n", 4)
    assert state.read(4, None) == (b"", 4)
    state.add_event({"offset": 14, "length": 0, "message": "", "capture_complete": True})
    assert state.complete and state.total == 14
    assert state.read(4, None) == (b"three\n", 14)  # never delivered (spilled): skipped


def test_a_hole_at_the_end_of_a_complete_stream_is_skipped() -> None:
    state = _state(_event(0, "one"),
                   {"offset": 20, "length": 0, "message": "", "capture_complete": True})
    assert state.read(4, None) == (b"", 20)


def test_a_started_stream_with_no_lines_reads_empty_not_none() -> None:
    state = _state({"offset": 0, "length": 0, "message": "", "eol": False,
                    "capture_started": True})
    assert state.read(0, None) == (b"", 0)
    state.add_event(_event(0, "first"))  # the marker took no offset from the first line
    assert state.read(0, None) == (b"first\n", 6)


def test_numbers_read_back_as_floats_count() -> None:
    state = _state({"offset": 0.0, "length": 3.0, "message": "ab", "eol": True})
    assert state.read(0, None) == (b"ab\n", 3)


def test_foreign_events_are_ignored() -> None:
    state = _state({"message": "not ours"}, _event(0, "ours"))
    assert state.read(0, None) == (b"ours\n", 5)


def test_the_cache_drops_the_least_recently_used_beyond_its_budget() -> None:
    cache = StreamCache(max_bytes=10)
    first = cache.get("a")
    first.add_event(_event(0, "123456789"))
    second = cache.get("b")
    second.add_event(_event(0, "123456789"))
    cache.get("c")  # over budget: "a", the least recently used, goes
    assert cache.get("b") is second
    assert cache.get("a") is not first  # listed again from the service when asked


def test_holes() -> None:
    assert not _state(_event(0, "a"), _event(2, "b")).has_holes()
    assert _state(_event(2, "b")).has_holes()
    done = _state(_event(0, "a"), {"offset": 5, "length": 0, "message": "",
                                   "capture_complete": True})
    assert done.has_holes()  # bytes 2..5 never arrived
