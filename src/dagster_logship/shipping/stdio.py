"""Writing to the process's stdout/stderr even while a host has redirected their file descriptors.

Why: Dagster captures compute logs by ``os.dup2``-ing a file over fd 1 and fd 2 for the length
of a step (in every step process and in ``execute_in_process``), and mirrors that file to the
real stdout with a ``tail -F`` process that it terminates when the step ends. Whatever ``tail``
had not copied by then never reaches the real stdout (dagster issue 23336); under load it can be
everything the step wrote. Our lines are written by a worker thread a moment after the record, so
they land in exactly that window, and container log agents, which read the process's stdout,
would never see them.

So a named stream is *pinned*: when a handler is built (before Dagster starts capturing) we keep
a duplicate of the file descriptor that ``sys.stdout``/``sys.stderr`` writes to. At write time:

- if ``sys.stdout`` is another object than the one pinned (pytest's capture,
  ``contextlib.redirect_stdout``, a host installing its own stream) we follow it and pin afresh;
- if it is the same object and its descriptor still refers to the pinned file, we write to it
  as usual;
- if it is the same object but its descriptor was redirected underneath (Dagster's compute-log
  capture), we write to the pinned descriptor, i.e. to the stdout the process had. The lines are
  then not in Dagster's captured compute log, where they were only a copy of the run's events.

The pin is dropped, and the current stream followed, as soon as the pinned descriptor no longer
refers to the file it was made for (a daemonizing host closed every descriptor).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any

__all__ = ["ATOMIC_WRITE", "pin", "resolve", "write_lines", "write_text"]

#: Linux's PIPE_BUF: a write of at most this many bytes to a pipe is never interleaved with
#: another process's writes. Step processes of one run share stdout, so lines go out in chunks
#: of whole lines no larger than this (a longer line goes alone).
ATOMIC_WRITE = 4096

_NAMES = ("stdout", "stderr")


@dataclass
class _Pin:
    stream: weakref.ref[Any]  # the sys.<name> object seen when pinned
    fd: int  # our duplicate of its descriptor (close-on-exec)
    ident: tuple[int, int]  # (st_dev, st_ino) of the file it refers to


_lock = threading.RLock()
_pins: dict[str, _Pin] = {}


def _ident(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def _fileno(stream: Any) -> int | None:
    try:
        fd = stream.fileno()
    except Exception:  # io.UnsupportedOperation (StringIO, pytest's capsys), closed streams
        return None
    return fd if isinstance(fd, int) and fd >= 0 else None


def _drop_locked(name: str) -> None:
    old = _pins.pop(name, None)
    if old is not None:
        with contextlib.suppress(OSError):
            if _ident(old.fd) == old.ident:  # never close a number someone else reuses now
                os.close(old.fd)


def _pin_locked(name: str, stream: Any) -> None:
    _drop_locked(name)
    fd = _fileno(stream)
    if fd is None:
        return
    try:
        ident = _ident(fd)
        dup = os.dup(fd)  # non-inheritable: not passed to subprocesses
    except OSError:
        return
    try:
        ref = weakref.ref(stream)
    except TypeError:
        os.close(dup)
        return
    _pins[name] = _Pin(ref, dup, ident)


def pin(name: str) -> None:
    """Remember where ``sys.<name>`` writes now, unless that very stream object is pinned already.

    Called when a handler is built: Dagster builds loggers before it starts capturing a step.
    """
    if name not in _NAMES:
        return
    with _lock:
        stream = getattr(sys, name, None)
        current = _pins.get(name)
        if stream is not None and (current is None or current.stream() is not stream):
            _pin_locked(name, stream)


def resolve(name: str) -> tuple[IO[str] | None, int | None]:
    """``(sys.<name>, fd)``: write to ``fd`` when it is not None (the stream's descriptor was
    redirected underneath it), else to the stream."""
    with _lock:
        stream = getattr(sys, name, None)
        if stream is None:
            return None, None
        current = _pins.get(name)
        if current is None or current.stream() is not stream:
            _pin_locked(name, stream)  # a new stream object: follow it
            return stream, None
        fd = _fileno(stream)
        try:
            if fd is None or _ident(fd) == current.ident:
                return stream, None
            if _ident(current.fd) == current.ident:
                return stream, current.fd
        except OSError:
            pass
        _drop_locked(name)  # our duplicate is gone or reused: follow the stream
        return stream, None


def write_lines(stream: IO[str], lines: Sequence[str], fd: int | None = None) -> None:
    """Write whole lines in chunks of at most :data:`ATOMIC_WRITE` bytes (a longer line alone),
    to ``fd`` when given, else to ``stream``'s binary buffer (or the stream itself)."""
    if fd is None:
        stream.flush()
    buffer = getattr(stream, "buffer", None) if fd is None else None
    chunk: list[bytes] = []
    size = 0

    def emit() -> None:
        data = b"".join(chunk)
        if fd is not None:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        elif buffer is not None:
            buffer.write(data)
            buffer.flush()
        else:
            stream.write(data.decode("utf-8"))
            stream.flush()

    for line in lines:
        data = line.encode("utf-8", "replace") + b"\n"
        if chunk and size + len(data) > ATOMIC_WRITE:
            emit()
            chunk, size = [], 0
        chunk.append(data)
        size += len(data)
    if chunk:
        emit()


def write_text(name: str, text: str) -> None:
    """Write ``text`` to ``sys.<name>`` (pinned as above). Never raises."""
    try:
        stream, fd = resolve(name)
        if stream is None:
            stream = getattr(sys, f"__{name}__", None)
            if stream is None:
                return
        if fd is not None:
            data = memoryview(text.encode("utf-8", "replace"))
            while data:
                data = data[os.write(fd, data) :]
        else:
            stream.write(text)
            stream.flush()
    except Exception:
        pass


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
