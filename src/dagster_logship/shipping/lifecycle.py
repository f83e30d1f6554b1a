"""The process around the workers: one worker per destination, and delivery when it ends.

A registry keyed by destination lets handlers built again and again (Dagster builds loggers per
run and per step) share one worker and one client; the last handler to let go stops it. At
interpreter exit, at the end of a ``multiprocessing`` child (which skips ``atexit``) and on a
SIGTERM left at its default, every worker gets its ``flush_timeout`` to deliver and spills the
rest. After ``fork`` the child's workers start empty with fresh locks: the parent ships what it
had queued.
"""

from __future__ import annotations

import atexit
import multiprocessing.util
import os
import signal
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from queue import Empty, SimpleQueue
from typing import TYPE_CHECKING, Any
from weakref import WeakSet

if TYPE_CHECKING:
    from .worker import Worker

__all__ = [
    "acquire",
    "current",
    "drain_releases",
    "ensure_exit_hooks",
    "flush_all",
    "registered_workers",
    "release",
    "release_later",
    "shutdown_all",
    "track",
]


@dataclass
class _Entry:
    worker: Worker
    refs: int


_registry_lock = threading.Lock()
_registry: dict[Hashable, _Entry] = {}
_released: SimpleQueue[tuple[Hashable, Worker]] = SimpleQueue()
_live_workers: WeakSet[Worker] = WeakSet()


def track(worker: Worker) -> None:
    """Count ``worker`` among those to deliver at exit and to reset after fork."""
    _live_workers.add(worker)


def acquire(key: Hashable, factory: Callable[[], Worker]) -> Worker:
    """The worker for ``key`` in this process, made by ``factory`` if there is none."""
    drain_releases()
    with _registry_lock:
        entry = _registry.get(key)
        if entry is None:
            entry = _registry[key] = _Entry(factory(), 0)
        entry.refs += 1
        return entry.worker


def current(key: Hashable) -> Worker | None:
    """The worker other handlers of ``key`` use in this process now, if any."""
    with _registry_lock:
        entry = _registry.get(key)
        return entry.worker if entry is not None else None


def release(key: Hashable, worker: Worker) -> None:
    """One handler is done with ``worker``; the last one stops it (after it drains)."""
    with _registry_lock:
        entry = _registry.get(key)
        if entry is None or entry.worker is not worker:
            return
        entry.refs -= 1
        if entry.refs > 0:
            return
        del _registry[key]
    worker.stop()


def release_later(key: Hashable, worker: Worker) -> None:
    """Release from a garbage-collection callback: no locks here, done at the next safe point."""
    _released.put((key, worker))


def drain_releases() -> None:
    """Carry out the releases garbage collection asked for."""
    while True:
        try:
            key, worker = _released.get_nowait()
        except Empty:
            return
        release(key, worker)


def registered_workers() -> list[Worker]:
    """Workers alive in this process (for tests and diagnostics)."""
    drain_releases()
    pid = os.getpid()
    return [w for w in list(_live_workers) if w.pid == pid]


def flush_all(timeout: float = 30.0) -> bool:
    """Flush every destination of this process; False if any did not finish within ``timeout``.

    For tests and for hosts that want delivery at a point of their choosing (Dagster runs that
    execute in the calling process never close their loggers).
    """
    deadline = time.monotonic() + timeout
    ok = True
    for worker in registered_workers():
        ok = worker.flush(max(0.0, deadline - time.monotonic())) and ok
    return ok


def shutdown_all() -> None:
    """Give every worker its ``flush_timeout`` to deliver, then spill what is left.

    Never waits longer than the largest ``flush_timeout`` of the workers alive.
    """
    pid = os.getpid()
    workers = [w for w in list(_live_workers) if w.pid == pid]
    now = time.monotonic()
    waits = []
    for worker in workers:
        deadline = now + worker.options.flush_timeout
        try:
            waits.append((worker, worker.begin_exit(deadline), deadline))
        except Exception:
            continue
    for worker, target, deadline in waits:
        try:
            if not worker.wait_done(target, deadline):
                worker.abandon_now(
                    f"process exiting: not delivered within flush_timeout "
                    f"({worker.options.flush_timeout:g}s)"
                )
        except Exception:
            continue
    for worker in workers:  # a worker may be reused by a later handler in this process
        worker.end_exit()


_hooks_pid: int | None = None


def ensure_exit_hooks() -> None:
    """Register exit hooks in this process (a forked child starts with no Finalize registry)."""
    global _hooks_pid
    pid = os.getpid()
    if _hooks_pid == pid:
        return
    _hooks_pid = pid
    atexit.register(shutdown_all)
    # multiprocessing children started by fork or forkserver end with os._exit() after running
    # these finalizers, skipping atexit. (Imported at module level: an import in a forked child
    # can hang on a module lock that another thread of the parent held at fork time.)
    multiprocessing.util.Finalize(None, shutdown_all, exitpriority=100)
    _install_sigterm_hook()


_terminating = False


def _install_sigterm_hook() -> None:
    """Deliver on SIGTERM, then die of it, in processes that left SIGTERM at its default.

    With the default disposition the kernel ends the process at once and no exit hook runs: a
    plain ``kill``, ``Process.terminate()`` or a container stop lost what was queued. Installed
    only from the main thread and only over ``SIG_DFL``: a handler someone else installed
    (Dagster's, in run workers and step processes, which then unwind and run the exit hooks)
    is never replaced.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    try:
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError, AttributeError):  # no signals here (embedded interpreters)
        pass


def _on_sigterm(signum: int, frame: Any) -> None:
    """Deliver from a helper thread (a worker lock held by the interrupted main thread is
    released meanwhile), then die of SIGTERM (exit status -15), only later. A second SIGTERM
    ends the process at once."""
    global _terminating
    if not _terminating:
        _terminating = True
        pid = os.getpid()
        longest = max(
            (w.options.flush_timeout for w in list(_live_workers) if w.pid == pid), default=0.0
        )
        helper = threading.Thread(
            target=shutdown_all, name="dagster-logship SIGTERM flush", daemon=True
        )
        helper.start()
        helper.join(longest + 1.0)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _after_fork_in_child() -> None:
    global _hooks_pid, _registry_lock, _terminating
    for worker in list(_live_workers):
        worker.after_fork()
    _registry_lock = threading.Lock()
    _hooks_pid = None
    # A SIGTERM handler installed by the parent stays: the child delivers its own records.
    _terminating = False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
