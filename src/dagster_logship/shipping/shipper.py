"""The helper process of ``shipper: process``: an ordinary worker fed through a pipe.

Started by :class:`~.remote.ProcessWorker` with ``sys.executable``. It reads the sink's recipe
and the options from the first frame, then frames of snapshots, and answers on a pipe of its
own with how far delivery got (in the logging process's sequence numbers) and its counters.
It ends when its input ends (the logging process closed it, or died), after ``flush_timeout`` to
deliver what it holds and spilling the rest. It ignores Ctrl-C (the terminal's signal to the
logging process's group) and leaves its own session for the same reason; SIGTERM flushes as in
any process (``worker._install_sigterm_hook``).
"""

from __future__ import annotations

import gc
import importlib
import signal
import threading
from collections import deque
from typing import Any, BinaryIO

from .options import ShippingOptions
from .remote import _frame as frame
from .remote import read_frame, write_all
from .spill import diagnostic
from .worker import Worker, shutdown_all

__all__ = ["main"]

#: Counters are sent at least this often while something changes.
_STATS_EVERY = 0.5

#: The helper's collector runs its youngest generation after this many new container objects
#: (CPython's default is 700).
GC_YOUNG_THRESHOLD = 20_000


def tune_gc() -> None:
    """Collect garbage less often in the helper, and never walk what the imports left behind.

    Why: the helper allocates a tuple or two per record (the snapshot ``marshal`` makes, the
    batch item) and keeps thousands of them in lists while a batch is built and sent. At
    CPython's default threshold every young collection walks those lists again; with the SDK's
    modules in the old generation, a full collection walks them too. That was ~8% of the
    helper's CPU per record (100 of ~1,200 ms for 200,000 records; benchmarks/README.md).
    Cycles are still collected, just in larger steps. The helper runs only our code and the
    SDK's, so the setting is ours to make; the logging process's collector is left alone.
    """
    gc.freeze()  # what the imports made lives as long as the process: out of every collection
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


class _Acks:
    """Answers the logging process: which of its sequence numbers are done, and the counters."""

    def __init__(self, worker: Worker, fd: int) -> None:
        self.worker = worker
        self.fd = fd
        self.marks: deque[tuple[int, int]] = deque()  # (our sequence, theirs)
        self.ending = False
        self.thread = threading.Thread(target=self._run, name="dagster-logship acks", daemon=True)

    def expect(self, theirs: int) -> None:
        """Everything put so far is ``theirs``: acknowledge it once it is done here."""
        worker = self.worker
        with worker._lock:
            self.marks.append((worker._seq, theirs))
            worker._progress.notify_all()

    def send(self, upto: int) -> None:
        write_all(self.fd, frame(("A", upto, self.worker.stats_snapshot())))

    def _run(self) -> None:
        worker = self.worker
        marks = self.marks
        sent_stats: dict[str, int] = {}
        while True:
            upto = 0
            with worker._lock:
                if not (marks and marks[0][0] <= worker._done_seq) and not self.ending:
                    worker._progress.wait(_STATS_EVERY)
                done = worker._done_seq
                while marks and marks[0][0] <= done:
                    upto = marks.popleft()[1]
                ending = self.ending and not marks
            stats = worker.stats_snapshot()
            if upto or stats != sent_stats:
                try:
                    write_all(self.fd, frame(("A", upto, stats)))
                except OSError:
                    return  # the logging process is gone: nobody to tell
                sent_stats = stats
            if ending:
                return


def main(config: dict[str, Any], records: BinaryIO) -> None:
    answers = int(config["answer_fd"])
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    module_name, name, args, kwargs = config["sink"]
    try:
        factory = getattr(importlib.import_module(module_name), name)
        sink = factory(*args, **kwargs)
        worker = Worker(sink, ShippingOptions(**config["options"]), eager=True)
    except Exception as exc:
        # Nothing was sent to us yet: the logging process ships from a thread instead.
        diagnostic(f"shipper process could not start: {type(exc).__name__}: {exc}")
        raise SystemExit(3) from None
    tune_gc()
    acks = _Acks(worker, answers)
    acks.send(0)  # ready
    acks.thread.start()
    while True:
        try:
            message = read_frame(records)
        except Exception as exc:
            diagnostic(f"shipper process for {sink.destination}: unreadable input ({exc!r})")
            message = None
        if message is None:
            break
        if message[0] == "R":
            worker.put_many(message[2])
            acks.expect(message[1])
        elif message[0] == "F":
            acks.expect(message[1])
            worker.flush(0.0)  # send now, without waiting here
    # The input ended: deliver within flush_timeout, spill the rest, answer, leave.
    shutdown_all()
    with worker._lock:
        acks.ending = True
        worker._progress.notify_all()
    acks.thread.join(5.0)
