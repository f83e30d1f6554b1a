"""Cutting a growing capture file into lines with byte offsets (compute_logs/lines.py)."""

from __future__ import annotations

from pathlib import Path

from dagster_logship.compute_logs.lines import PARTIAL_LINE_SECONDS, Chunk, LineReader, cut_utf8


def _append(path: Path, data: bytes) -> None:
    with open(path, "ab") as fh:
        fh.write(data)


def test_lines_come_with_their_offsets_as_the_file_grows(tmp_path: Path) -> None:
    path = tmp_path / "out"
    reader = LineReader(str(path))
    assert reader.read() == []  # not created yet: nothing, no error
    _append(path, b"one\ntwo\nthr")
    assert reader.read(now=0.0) == [Chunk(0, 4, "one", True), Chunk(4, 4, "two", True)]
    _append(path, b"ee\n")
    assert reader.read(now=0.1) == [Chunk(8, 6, "three", True)]
    assert reader.position == 14


def test_a_partial_line_waits_then_ships_and_the_rest_follows(tmp_path: Path) -> None:
    path = tmp_path / "out"
    reader = LineReader(str(path))
    _append(path, b"progress 10%")
    assert reader.read(now=100.0) == []
    assert reader.read(now=100.0 + PARTIAL_LINE_SECONDS) == [Chunk(0, 12, "progress 10%", False)]
    _append(path, b" 20%\n")
    assert reader.read(now=200.0) == [Chunk(12, 5, " 20%", True)]


def test_the_last_line_without_newline_ships_when_final(tmp_path: Path) -> None:
    path = tmp_path / "out"
    path.write_bytes(b"a\nno newline")
    reader = LineReader(str(path))
    assert reader.read(final=True) == [Chunk(0, 2, "a", True), Chunk(2, 10, "no newline", False)]
    assert reader.read(final=True) == []


def test_long_lines_are_cut_at_character_boundaries(tmp_path: Path) -> None:
    path = tmp_path / "out"
    text = "é" * 10  # 2 bytes each
    path.write_bytes(text.encode() + b"\n")
    reader = LineReader(str(path), max_chunk=5)
    chunks = reader.read(final=True)
    assert "".join(c.text for c in chunks) == text
    assert all("\ufffd" not in c.text for c in chunks)
    assert [c.offset for c in chunks] == [0, 4, 8, 12, 16]  # the last piece holds the newline
    assert sum(c.length for c in chunks) == 21
    assert b"".join(c.data() for c in chunks) == text.encode() + b"\n"


def test_invalid_utf8_becomes_replacement_but_keeps_its_length(tmp_path: Path) -> None:
    path = tmp_path / "out"
    path.write_bytes(b"ok \xff\xfe\n")
    (chunk,) = LineReader(str(path)).read()
    assert chunk.text == "ok \ufffd\ufffd" and chunk.length == 6


def test_cut_utf8() -> None:
    assert cut_utf8(b"abc", 5) == 3
    assert cut_utf8("aé".encode(), 2) == 1  # never inside the 2-byte é
    assert cut_utf8("€€".encode(), 4) == 3


def test_a_partial_line_is_timed_from_when_its_own_bytes_came(tmp_path: Path) -> None:
    path = tmp_path / "out"
    reader = LineReader(str(path))
    _append(path, b"slow")
    assert reader.read(now=0.0) == []
    _append(path, b" line\nnew")  # completes the old line, starts a new one
    assert reader.read(now=PARTIAL_LINE_SECONDS - 0.1) == [Chunk(0, 10, "slow line", True)]
    # "new" came just now: not shipped as a partial line yet, though "slow" waited long.
    assert reader.read(now=PARTIAL_LINE_SECONDS + 0.1) == []
    _append(path, b" one\n")
    assert reader.read(now=PARTIAL_LINE_SECONDS + 0.2) == [Chunk(10, 8, "new one", True)]
