"""Jobs whose steps write to stdout and stderr the ways real steps do: ``print``, a subprocess
writing to the inherited descriptors, and a step that waits to be terminated."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from dagster import job, multiprocess_executor, op

#: Lines each stream of ``chatter`` gets from Python (the subprocess adds one more to each).
LINES = 40


def expected_stdout() -> list[str]:
    return [f"chatter stdout {i}" for i in range(LINES)] + ["sub stdout", "chatter stdout last"]


def expected_stderr() -> list[str]:
    return [f"chatter stderr {i}" for i in range(LINES)] + ["sub stderr"]


@op
def chatter() -> int:
    for i in range(LINES):
        print(f"chatter stdout {i}")
        print(f"chatter stderr {i}", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    # The subprocess writes to the same descriptors, which Dagster pointed at its capture file.
    subprocess.run(["sh", "-c", "echo 'sub stdout'; echo 'sub stderr' 1>&2"], check=True)
    print("chatter stdout last", flush=True)
    return 1


@op
def second(value: int) -> None:
    print(f"second got {value}", flush=True)


@job(executor_def=multiprocess_executor)
def chatty() -> None:
    second(chatter())


@op
def stamped() -> None:
    """Lines that carry the time they were printed, spread over about two seconds."""
    for i in range(int(os.environ.get("CL_STAMPED_LINES", "40"))):
        print(f"stamp {i} {time.time():.6f}", flush=True)
        time.sleep(0.05)
    Path(os.environ.get("CL_RETURNED_FILE", os.devnull)).write_text(f"{time.time():.6f}")


@job(executor_def=multiprocess_executor)
def stamping() -> None:
    stamped()


@op
def doomed() -> None:
    """Prints, says where it runs, then waits to be terminated."""
    for i in range(5):
        print(f"before the end {i}", flush=True)
    print("and on stderr", file=sys.stderr, flush=True)
    Path(os.environ["CL_READY_FILE"]).write_text(str(os.getpid()))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.05)


@job(executor_def=multiprocess_executor)
def terminated() -> None:
    doomed()
