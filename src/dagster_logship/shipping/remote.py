"""``shipper: process``: encode and send in a helper process; the logging process hands over.

With a worker thread, every record costs the logging process its encoding and sending too: the
thread holds the GIL for that long, in a tight loop about three times what ``emit`` costs. Here the
logging process keeps the caller side as it is (snapshot, bounded queue, overflow policy) and a
thread that writes queued snapshots, ``marshal``-ed up to a thousand at a time, to a pipe. A helper
process (``shipping/shipper.py``) reads them into an ordinary :class:`~.worker.Worker` with the real
sink, which batches, retries and spills as always, and reports back how far it got.

What changes for a user, and why it is worth it:

- The logging process pays ~0.2 us per record to hand it over; the rest runs on another core.
- Records already handed over survive the logging process: after SIGKILL or ``os._exit`` the
  helper still delivers them (it ends when the pipe closes, after its own ``flush_timeout``).
- ``flush`` and process exit still wait for delivery: the helper acknowledges by sequence number.
- The queue bound is shared: the logging process holds at most a quarter of
  ``queue_max_records`` / ``queue_max_bytes``, the helper the rest.
- If the helper cannot start (no usable ``sys.executable``, an import failing there), or ends
  while it holds records, this process says so on stderr and ships from a thread from then on;
  records the helper held and had not acknowledged are counted as ``lost`` (signals such as the
  OOM killer's run no code, in any process).

The pipe carries ``marshal`` data: plain values only, so nothing from the logging process runs in
the helper. Snapshots holding other objects (a DagsterEvent, unusual extras) are made plain first
(:func:`plain_snapshot`). The first frame is the sink's constructor and its arguments, pickled,
which may include credentials: it goes through the pipe, never the command line or environment.
"""

from __future__ import annotations

import contextlib
import json
import marshal
import os
import pickle
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Any, BinaryIO

from . import stdio
from .encoding import (
    ARGS,
    DAGSTER_EVENT,
    EXTRAS,
    JOB_TAGS,
    MEM,
    Snapshot,
    encode,
    event_facts,
)
from .options import ShippingOptions
from .sink import Sink
from .spill import diagnostic
from .stats import DeliveryStats
from .worker import Worker, _local

__all__ = ["ProcessWorker", "SinkSpec", "make_worker", "plain_snapshot"]


class SinkSpec:
    """How to build a sink in another process: module, callable name, positional and keyword
    arguments (plain, picklable values). They may hold credentials: its ``repr`` names only the
    callable."""

    __slots__ = ("args", "kwargs", "module", "name")

    def __init__(
        self,
        module: str,
        name: str,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.module, self.name, self.args, self.kwargs = module, name, args, dict(kwargs or {})

    def __repr__(self) -> str:
        return f"<SinkSpec {self.module}.{self.name}(...)>"


_FRAME = struct.Struct("<I")
#: Forward queued records at least this often, so the helper's batching window starts soon.
_FORWARD_INTERVAL = 0.05
#: Records per frame at most.
_FRAME_RECORDS = 4096
#: How long the helper may take to start (interpreter, imports, sink) before we ship ourselves.
_READY_TIMEOUT = 60.0
#: Share of the queue bounds held in this process; the helper holds the rest.
_LOCAL_SHARE = 4

# The helper imports the shipping layer without running ``dagster_logship/__init__`` (which
# imports Dagster): a bare package module with the same search path stands in for it. It reads
# its input through a 1 MiB buffer: every read that goes to the OS gives up the GIL, and getting
# it back from the sending thread can take a switch interval (5 ms).
_BOOT = (
    "import pickle,struct,sys,types\n"
    "f=open(0,'rb',buffering=1<<20,closefd=False)\n"
    "c=pickle.loads(f.read(struct.unpack('<I',f.read(4))[0]))\n"
    "sys.path[:]=c['sys_path']\n"
    "m=types.ModuleType('dagster_logship');m.__path__=c['package_path']\n"
    "sys.modules['dagster_logship']=m\n"
    "from dagster_logship.shipping.shipper import main\n"
    "main(c,f)\n"
)

_PLAIN_TYPES = (str, int, float, bool, type(None))


def _plain_value(value: Any) -> Any:
    if type(value) in _PLAIN_TYPES:
        return value
    # What the JSON encoder makes of it (never raises), read back as plain values.
    text, _ = encode({"v": value})
    try:
        return json.loads(text).get("v")
    except Exception:
        return text


def _plain_str(value: Any) -> Any:
    if type(value) in _PLAIN_TYPES:
        return value
    return _plain_value(value) if isinstance(value, (dict, list, tuple)) else _safe(value)


def _safe(value: Any) -> str:
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"


def plain_snapshot(snap: Snapshot) -> Snapshot:
    """``snap`` with every value ``marshal`` can carry: the DagsterEvent as its facts, extras
    through the JSON encoder, anything else as its ``str``. The helper encodes the same event."""
    out = list(snap)
    for i, value in enumerate(out):
        if type(value) in _PLAIN_TYPES or i >= ARGS:  # deferred %-args are plain by construction
            continue
        if i == DAGSTER_EVENT:
            out[i] = event_facts(value)
        elif i == EXTRAS:
            out[i] = tuple((_safe(k), _plain_value(v)) for k, v in value)
        elif i == JOB_TAGS:
            out[i] = tuple((_safe(k), _plain_str(v)) for k, v in value)
        else:
            out[i] = _plain_str(value)
    return tuple(out)


def _frame(message: Any) -> bytes:
    data = marshal.dumps(message)
    return _FRAME.pack(len(data)) + data


def read_frame(stream: BinaryIO) -> Any:
    """The next ``marshal`` frame from ``stream``, or None at its end (or a torn frame)."""
    head = stream.read(_FRAME.size)
    if len(head) < _FRAME.size:
        return None
    (size,) = _FRAME.unpack(head)
    data = stream.read(size)
    if len(data) < size:
        return None
    return marshal.loads(data)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class _Stats(DeliveryStats):
    """This process's counters (enqueued, dropped here, suppressed) plus the helper's fates."""

    remote: dict[str, int]
    lost: int

    def __post_init__(self) -> None:
        super().__post_init__()
        self.remote = {}
        self.lost = 0

    def snapshot(self) -> dict[str, int]:
        data = super().snapshot()
        remote = self.remote
        for key in ("delivered", "retried", "rejected", "dropped", "spilled", "parts_split",
                    "batches"):  # fmt: skip
            data[key] += remote.get(key, 0)
        data["lost"] = self.lost
        return data


class ProcessWorker(Worker):
    """A :class:`Worker` whose thread hands records to a helper process instead of sending.

    The caller side (``put``, overflow, ``flush``, exit hooks) is the base class's. The thread
    (``_run``) starts the helper, forwards, and falls back to the base class's sending loop if
    the helper is not there. ``_done_seq`` advances on the helper's acknowledgements.
    """

    def __init__(self, sink: Sink, options: ShippingOptions, spec: SinkSpec) -> None:
        self._spec = spec
        self._child_options = replace(
            options,
            shipper="thread",
            queue_max_records=max(1, options.queue_max_records - _local_records(options)),
            queue_max_bytes=max(1, options.queue_max_bytes - _local_bytes(options)),
        )
        local = replace(
            options,
            queue_max_records=_local_records(options),
            queue_max_bytes=_local_bytes(options),
        )
        super().__init__(sink, local)

    def _init_process_state(self) -> None:
        super()._init_process_state()
        self.stats = self._pstats = _Stats()
        self._proc: subprocess.Popen[bytes] | None = None
        self._out: int | None = None  # write end of the records pipe
        self._closing: int | None = None  # the same, once stopping: closed by the thread
        self._state = "new"  # new -> up -> closed | down (then the base class ships)
        self._forwarded = 0  # highest sequence number written to the helper
        self._asked = 0  # highest flush target passed on
        self._ready = threading.Event()  # the helper answered, or ended first
        self._answered = 0  # pid of the helper that answered last
        self._closed_upto: dict[int, int] = {}  # helper pid -> last sequence forwarded to it
        # An acknowledgement from a newer helper while one whose input we closed is still
        # delivering: it counts once that one is done (see _acknowledged_locked).
        self._held_ack = 0

    def after_fork(self) -> None:
        """In a forked child: the helper belongs to the parent; close our copy of its pipe so
        that it still sees the end of it when the parent is gone, and start afresh."""
        for fd in (self._out, self._closing):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        super().after_fork()

    @property
    def shipper_pid(self) -> int | None:
        """The helper process's pid while one runs (for tests and benchmarks)."""
        proc = self._proc
        return proc.pid if proc is not None and self._state == "up" else None

    # -- the thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        _local.active = True
        if self._state == "closed":
            with self._lock:  # the same step as a put that would need this thread
                idle = not self._queue
                if idle and self._thread is threading.current_thread():
                    self._thread = None
            if idle:
                # Started by a flush after the handler closed: nothing to hand over, and the
                # helper whose input was closed settles the rest (_acknowledged_locked). A new
                # helper would only answer for records it never had.
                return
        if self._state in ("new", "closed"):
            self._spawn()
        if self._state != "up":
            super()._run()
            return
        me = threading.current_thread()
        try:
            while self._state == "up":
                snaps, first, flush_to, stop = self._take_forward()
                if snaps and not self._forward(snaps, first):
                    break
                if flush_to and not self._send(("F", flush_to)):
                    break
                if stop:
                    self._close_pipe()
                    break
        except BaseException as exc:  # pragma: no cover - a bug; make it visible
            diagnostic(f"shipper feed for {self.sink.destination} failed: {exc!r}")
            self._down("the feed to it failed")
        if self._state == "down":  # the helper is gone: ship from here from now on
            with self._lock:
                taken, first, epoch = self._taken, self._taken_first, self._epoch
            if taken:  # a frame the helper never read
                self._process(taken, first, True, epoch)
            super()._run()
            return
        with self._lock:
            if self._thread is me:
                self._thread = None
            self._progress.notify_all()

    def _take_forward(self) -> tuple[list[Snapshot], int, int, bool]:
        """Wait for records worth a frame; return (snapshots, the first one's sequence number,
        flush target to pass on, stop)."""
        with self._lock:
            while True:
                if self._state != "up":
                    return [], 0, 0, False
                queue = self._queue
                urgent = (
                    self._flush_target > self._asked
                    or self._stopping
                    or self._abandon_at is not None
                )
                age = time.monotonic() - self._head_at if queue else 0.0
                if queue and (
                    urgent
                    or len(queue) >= self._encode_at
                    or age >= _FORWARD_INTERVAL
                    or self._queued_mem * 2 >= self.options.queue_max_bytes
                ):
                    first = self._popped + 1
                    if len(queue) <= _FRAME_RECORDS:  # the usual case: all of it
                        out = list(queue)
                        queue.clear()
                        self._queued_mem = 0
                    else:
                        out = [queue.popleft() for _ in range(_FRAME_RECORDS)]
                        self._queued_mem -= sum([s[MEM] for s in out])
                    self._popped += len(out)
                    self._taken, self._taken_first, self._taken_at = out, first, self._head_at
                    self._room.notify_all()
                    return out, first, 0, False
                if self._flush_target > self._asked:
                    self._asked = self._flush_target
                    return [], 0, self._asked, False
                if self._stopping:
                    # Closed in the same locked step as the thread gives up its slot: a record
                    # put right after starts a thread that starts a new helper.
                    if self._thread is threading.current_thread():
                        self._thread = None
                    self._close_locked()
                    return [], 0, 0, True
                if queue:
                    self._wait_locked(max(_FORWARD_INTERVAL - age, 0.001), self._encode_at)
                else:
                    self._wait_locked(1.0, 1)

    def _forward(self, snaps: list[Snapshot], first: int) -> bool:
        last = first + len(snaps) - 1
        try:  # queue entries as they are
            data = _frame(("R", last, snaps))
        except ValueError:  # an object marshal cannot carry: make those snapshots plain
            data = _frame(("R", last, [plain_snapshot(s) for s in snaps]))
        if not self._write(data):
            # They stay taken (with their numbers): the thread ships them itself first (_run).
            # Putting them back at the head of the queue would number them anew, wrongly if
            # overflow dropped newer records meanwhile (flush would then return too early).
            return False
        with self._lock:
            if self._taken is snaps:
                self._taken = []
            self._forwarded = max(self._forwarded, last)
        return True

    def _send(self, message: Any) -> bool:
        return self._write(_frame(message))

    def _write(self, data: bytes) -> bool:
        fd = self._out
        if fd is None:
            return False
        try:
            write_all(fd, data)
            return True
        except OSError:  # the helper is gone (EPIPE)
            self._down("it stopped reading")
            return False

    def _close_locked(self) -> None:
        if self._state == "up" and self._proc is not None:
            self._state = "closed"
            self._closed_upto[self._proc.pid] = self._forwarded
            self._closing, self._out = self._out, None

    def _close_pipe(self) -> None:
        """End the helper's input: it delivers what it holds, answers, and exits."""
        with self._lock:
            fd, self._closing = self._closing, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    # -- the helper ----------------------------------------------------------------------------

    def _spawn(self) -> None:
        spec = self._spec
        module, args = spec.module, spec.args
        package = sys.modules[__name__.rsplit(".", 2)[0]]
        config = {
            "sys_path": list(sys.path),
            "package_path": list(getattr(package, "__path__", [])),
            "sink": (module, spec.name, tuple(args), spec.kwargs),
            "options": asdict(self._child_options),
            "parent_pid": os.getpid(),
        }
        try:
            blob = pickle.dumps(config)
        except Exception as exc:
            self._give_up(f"its settings cannot be passed on ({type(exc).__name__})")
            return
        # The helper writes where this process writes now (past a redirection underneath, as
        # in shipping/stdio.py): its diagnostics to our stderr, a stream sink's lines to ours.
        out_fd, err_fd = stdio.descriptor("stdout"), stdio.descriptor("stderr")
        if module.endswith(".sinks.stream") and (out_fd if args[0] == "stdout" else err_fd) is None:
            self._give_up(f"{args[0]} has no file descriptor here to hand over")
            return
        records_r = records_w = acks_r = acks_w = -1
        try:
            records_r, records_w = os.pipe()
            acks_r, acks_w = os.pipe()
            config["answer_fd"] = acks_w
            blob = pickle.dumps(config)
            proc = subprocess.Popen(
                [sys.executable, "-c", _BOOT],
                stdin=records_r,
                stdout=out_fd,
                stderr=err_fd,
                pass_fds=(acks_w,),
                close_fds=True,
                start_new_session=True,  # a Ctrl-C or a kill of our process group spares it
            )
        except Exception as exc:
            for fd in (records_r, records_w, acks_r, acks_w):
                if fd >= 0:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            self._give_up(f"it could not be started ({type(exc).__name__}: {exc})")
            return
        os.close(records_r)
        os.close(acks_w)
        ready = threading.Event()
        with self._lock:
            self._proc, self._out, self._ready = proc, records_w, ready
        acks = open(acks_r, "rb")  # noqa: SIM115 - owned by the reader thread
        threading.Thread(
            target=self._read_acks,
            args=(acks, proc, records_w),
            name=f"dagster-logship acks {self.sink.destination}",
            daemon=True,
        ).start()
        with contextlib.suppress(OSError):  # the reader sees the end and reports it
            write_all(records_w, _FRAME.pack(len(blob)) + blob)
        ready.wait(_READY_TIMEOUT)
        with self._lock:
            if self._proc is proc and self._answered == proc.pid and self._state != "down":
                self._state = "up"
                return
        with contextlib.suppress(Exception):
            proc.kill()
        self._give_up(
            "it ended before it was ready" if ready.is_set() else "it did not start in time"
        )

    def _give_up(self, why: str) -> None:
        with self._lock:
            self._state = "down"
        diagnostic(
            f"shipper process for {self.sink.destination}: {why}; shipping from a thread of "
            f"this process instead"
        )

    def _read_acks(self, stream: BinaryIO, proc: subprocess.Popen[bytes], fd: int) -> None:
        _local.active = True
        ready = self._ready
        try:
            while True:
                try:
                    message = read_frame(stream)
                except Exception:
                    message = None
                if message is None:
                    break
                _, upto, stats = message
                self._pstats.remote = stats
                self._answered = proc.pid
                ready.set()
                if upto:
                    with self._lock:
                        self._acknowledged_locked(proc.pid, upto)
        finally:
            stream.close()
        code = proc.wait()
        with self._lock:
            upto = self._closed_upto.pop(proc.pid, None)
            if upto is not None:
                # We closed its pipe: it delivered or spilled what it had, then left.
                self._acknowledged_locked(proc.pid, upto)
                if self._proc is proc:
                    self._proc = None
        if upto is not None:
            if code != 0:
                diagnostic(
                    f"shipper process for {self.sink.destination} ended with exit status {code} "
                    f"after its input closed"
                )
            return
        if self._answered == proc.pid:
            self._down(f"it ended (exit status {code})")
        else:
            ready.set()  # _spawn gives up; nothing was forwarded

    def _acknowledged_locked(self, pid: int, upto: int) -> None:
        """Helper ``pid`` has settled every record up to ``upto`` that was handed to it.

        FIX (found by a multiprocess Dagster run's test, about one run in fifty under load):
        records are numbered across helpers. When a host closes the handler, the feed thread
        closes the helper's input and ends while that helper still delivers; a flush then
        started a new helper, which settled the flush target at once (it held nothing), and
        that marked the old helper's records done too: ``flush_all`` returned before they had
        arrived. Now an answer is held back while a helper whose input was closed has not
        settled all it was given, and counts once that one has."""
        if any(other != pid and last > self._done_seq for other, last in self._closed_upto.items()):
            self._held_ack = max(self._held_ack, upto)
            return
        self._mark_done_locked(upto)
        if self._held_ack and all(last <= self._done_seq for last in self._closed_upto.values()):
            self._mark_done_locked(self._held_ack)
            self._held_ack = 0

    def _down(self, why: str) -> None:
        with self._lock:
            if self._state != "up":
                return
            self._state = "down"
            fd, self._out = self._out, None
            lost = max(0, self._forwarded - self._done_seq)
            self._pstats.lost += lost
            self._mark_done_locked(self._forwarded)
            self._wake.notify()
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
        diagnostic(
            f"shipper process for {self.sink.destination}: {why}; up to {lost} record(s) it "
            f"had not confirmed may be lost (counted as lost); shipping from a thread of this "
            f"process from now on"
        )


def _local_records(options: ShippingOptions) -> int:
    return max(1, options.queue_max_records // _LOCAL_SHARE)


def _local_bytes(options: ShippingOptions) -> int:
    return max(1, options.queue_max_bytes // _LOCAL_SHARE)


def make_worker(
    sink_factory: Callable[[], Sink], options: ShippingOptions, spec: SinkSpec | None
) -> Worker:
    """The worker ``options.shipper`` asks for (a thread without a spec to rebuild the sink)."""
    sink = sink_factory()
    if options.shipper == "process" and spec is not None:
        return ProcessWorker(sink, options, spec)
    return Worker(sink, options)
