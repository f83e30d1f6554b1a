"""No record lost when a process ends normally, forks, or runs multiprocessing children; exit
never waits longer than flush_timeout. Each scenario runs in a real Python process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time

import pytest
from support import MemorySink

_PRELUDE = """
import logging, multiprocessing, os, sys, time
from dagster_logship import JsonStreamHandler
from dagster_logship.shipping import ShippingHandler, ShippingOptions, Sink, SinkLimits

def make_logger(tag, **options):
    options.setdefault("flush_interval", 60.0)  # only an exit hook can deliver in time
    logger = logging.Logger(tag, level=logging.INFO)
    logger.addHandler(JsonStreamHandler(stream="stdout", **options))
    return logger
"""


def run_script(body: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a scenario as a script file (spawn and forkserver children re-import it)."""
    fd, path = tempfile.mkstemp(suffix=".py", prefix="logship_scenario_")
    with os.fdopen(fd, "w") as fh:
        fh.write(_PRELUDE + textwrap.dedent(body))
    try:
        return subprocess.run(
            [sys.executable, path], capture_output=True, text=True, timeout=timeout, check=False
        )
    finally:
        os.unlink(path)


def events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def test_interpreter_exit_delivers_what_is_queued():
    proc = run_script(
        """
        logger = make_logger("main")
        for i in range(5):
            logger.info("exit %d", i)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert [e["message"] for e in events(proc.stdout)] == [f"exit {i}" for i in range(5)]


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_multiprocessing_children_deliver_under_each_start_method(method):
    proc = run_script(
        f"""
        def child(n):
            logger = make_logger("child")
            for i in range(3):
                logger.info("child %d record %d", n, i)
            # returns without flush or close; fork/forkserver children skip atexit

        if __name__ == "__main__":
            ctx = multiprocessing.get_context({method!r})
            procs = [ctx.Process(target=child, args=(n,)) for n in range(3)]
            for p in procs:
                p.start()
            for p in procs:
                p.join()
            sys.exit(max(p.exitcode for p in procs))
        """
    )
    assert proc.returncode == 0, proc.stderr
    got = sorted(e["message"] for e in events(proc.stdout))
    assert got == sorted(f"child {n} record {i}" for n in range(3) for i in range(3))


def test_pool_workers_deliver():
    proc = run_script(
        """
        def work(n):
            make_logger("pool").info("task %d", n)
            return n

        if __name__ == "__main__":
            # close + join: workers end normally. (Pool's context manager terminates them with
            # SIGTERM, which is not a normal end; see the fault-injection suite.)
            pool = multiprocessing.get_context("fork").Pool(2)
            assert pool.map(work, range(6)) == list(range(6))
            pool.close()
            pool.join()
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(e["message"] for e in events(proc.stdout)) == [f"task {n}" for n in range(6)]


def test_fork_child_gets_a_working_handler_of_its_own():
    proc = run_script(
        """
        logger = make_logger("parent")
        logger.info("parent before fork")
        pid = os.fork()
        if pid == 0:
            logger.info("child after fork")
            ok = logger.handlers[0].flush(5)
            os._exit(0 if ok else 3)
        _, status = os.waitpid(pid, 0)
        logger.info("parent after fork")
        sys.exit(os.waitstatus_to_exitcode(status))
        """
    )
    assert proc.returncode == 0, proc.stderr
    messages = [e["message"] for e in events(proc.stdout)]
    # the parent's queued record is shipped once (by the parent), never again by the child
    assert sorted(messages) == ["child after fork", "parent after fork", "parent before fork"]
    pids = {e["message"]: e["pid"] for e in events(proc.stdout)}
    assert pids["child after fork"] != pids["parent before fork"]


def test_fork_while_another_thread_is_logging():
    proc = run_script(
        """
        import threading
        logger = make_logger("busy")
        stop = threading.Event()
        def chatter():
            while not stop.is_set():
                logger.info("noise")
        threads = [threading.Thread(target=chatter) for _ in range(2)]
        for t in threads: t.start()
        codes = []
        for n in range(5):
            pid = os.fork()
            if pid == 0:
                logger.info("forked %d", n)
                os._exit(0 if logger.handlers[0].flush(5) else 3)
            codes.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
        stop.set()
        for t in threads: t.join()
        sys.exit(max(codes))
        """
    )
    assert proc.returncode == 0, proc.stderr
    forked = sorted(e["message"] for e in events(proc.stdout) if e["message"] != "noise")
    assert forked == [f"forked {n}" for n in range(5)]


def test_exit_never_waits_longer_than_flush_timeout_and_spills_the_rest(tmp_path):
    spill = tmp_path / "spill.jsonl"
    start = time.monotonic()
    proc = run_script(
        f"""
        import threading
        class Stuck(Sink):
            limits = SinkLimits(max_batch_events=10, max_batch_bytes=10**5, max_event_bytes=10**4)
            destination = "stuck"
            def send(self, items):
                threading.Event().wait()  # a request that never returns
        handler = ShippingHandler(Stuck, key="stuck", options=ShippingOptions(
            flush_interval=0.01, flush_timeout=1.0, spill_path={str(spill)!r}))
        logger = logging.Logger("stuck")
        logger.addHandler(handler)
        for i in range(25):
            logger.info("stuck %d", i)
        """,
        timeout=30,
    )
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr
    assert elapsed < 1.0 + 8  # the flush timeout plus interpreter start-up, never a hang
    lines = [json.loads(line) for line in spill.read_text().splitlines()]
    assert sorted(line["message"] for line in lines) == sorted(f"stuck {i}" for i in range(25))
    assert all("flush_timeout" in line["logship_spill"]["reason"] for line in lines)
    assert "spilled" in proc.stderr and "stuck" in proc.stderr


def test_spawned_child_without_any_flush(tmp_path):
    # The same as above for spawn, but the child process is killed by nothing: it simply returns.
    proc = run_script(
        """
        def child():
            logger = make_logger("c", flush_timeout=5)
            logger.info("from spawn")
        if __name__ == "__main__":
            p = multiprocessing.get_context("spawn").Process(target=child)
            p.start(); p.join(); sys.exit(p.exitcode)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert [e["message"] for e in events(proc.stdout)] == ["from spawn"]


def test_memory_sink_is_fork_aware():
    # guards the test double itself: a forked copy must not wait on the parent's gate
    sink = MemorySink()
    sink.gate.clear()
    assert sink.owner == os.getpid()


def test_processes_sharing_one_stdout_pipe_never_split_a_line():
    # Step processes of one Dagster run share stdout. Lines go out in whole-line chunks of at
    # most PIPE_BUF bytes, which the kernel never interleaves with another process's writes.
    proc = run_script(
        """
        def child(n):
            logger = make_logger("c", flush_interval=0.001)
            for i in range(3000):
                logger.info("child %d line %d %s", n, i, "x" * 200)

        if __name__ == "__main__":
            ctx = multiprocessing.get_context("fork")
            procs = [ctx.Process(target=child, args=(n,)) for n in range(4)]
            for p in procs: p.start()
            for p in procs: p.join()
            sys.exit(max(p.exitcode for p in procs))
        """
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 4 * 3000
    messages = {json.loads(line)["message"].rsplit(" ", 1)[0] for line in lines}
    assert messages == {f"child {n} line {i}" for n in range(4) for i in range(3000)}
