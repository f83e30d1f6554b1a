"""What a Dagster log key says, and the names and ids our events get from it.

Dagster names captured logs by a list of strings:

- a step process, or the whole run in the in-process executor: ``[run_id, "compute_logs",
  file_key]`` (``file_key`` a random 8-letter key; the steps are in the run's LOGS_CAPTURED
  event, and we find them as the capture starts, see :func:`find_run_context`);
- a sensor or schedule tick: ``[repository_name, instigator_name, "YYYYMMDD_HHMMSS"]``;
- a backfill's daemon iteration: ``[*backfill prefix, "YYYYMMDD_HHMMSS"]``.

The stream layout is the log key joined by ``/`` plus the stream: the UI's reads need nothing
but the key to find the lines again.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "IO_NAMES",
    "LogKeyFacts",
    "event_id",
    "find_run_context",
    "joined",
    "split_joined",
]

IO_NAMES = ("stdout", "stderr")
_RUN_MARKER = "compute_logs"
_FRAME_DEPTH = 12


def _clean(part: str) -> str:
    # CloudWatch stream names may not hold ':' or '*'; braces would read as template fields.
    for bad in (":", "*", "{", "}"):
        part = part.replace(bad, "-")
    return part


def joined(log_key: Sequence[str]) -> str:
    """The log key as one string, ``/``-separated, safe as a CloudWatch stream name part."""
    return "/".join(_clean(str(part)) for part in log_key)


def split_joined(text: str) -> list[str]:
    """The log key a :func:`joined` string stands for (exact for Dagster's own keys)."""
    return text.split("/")


def event_id(log_key: Sequence[str], io_name: str, offset: int) -> str:
    """A stable id for the piece of ``io_name`` at ``offset``: Cloud Logging's ``insertId`` (a
    resent entry collapses with the first) and the schema's ``log_message_id``."""
    digest = hashlib.sha1(joined(log_key).encode("utf-8"), usedforsecurity=False).hexdigest()
    return f"{digest[:16]}-{io_name}-{offset}"


@dataclass(frozen=True)
class LogKeyFacts:
    """The fields every event of one capture carries."""

    run_id: str | None = None
    job_name: str | None = None
    step_key: str | None = None
    step_keys: tuple[str, ...] = ()
    repository: str | None = None
    instigator: str | None = None
    tick: str | None = None

    @classmethod
    def of(cls, log_key: Sequence[str], job_name: str | None = None,
           step_keys: Sequence[str] = ()) -> LogKeyFacts:
        """Facts from the key's shape, plus what the caller found about the run."""
        key = [str(part) for part in log_key]
        if len(key) == 3 and key[1] == _RUN_MARKER:
            steps = tuple(step_keys)
            return cls(run_id=key[0], job_name=job_name,
                       step_key=steps[0] if len(steps) == 1 else None, step_keys=steps)
        if len(key) >= 3:
            return cls(repository=key[-3], instigator=key[-2], tick=key[-1])
        return cls()

    @property
    def is_run(self) -> bool:
        return self.run_id is not None

    def extras(self) -> dict[str, Any]:
        """Event fields beyond the schema's run_id/job_name/step_key."""
        out: dict[str, Any] = {}
        if len(self.step_keys) > 1:
            out["step_keys"] = list(self.step_keys)
        if self.instigator is not None:
            out.update(repository=self.repository, instigator=self.instigator, tick=self.tick)
        return out


def find_run_context(run_id: str) -> tuple[str | None, list[str]]:
    """``(job_name, step_keys)`` of the capture Dagster is starting for ``run_id``.

    ``capture_logs`` receives only the log key. Dagster calls it from its plan execution loop,
    whose locals hold the run's context and the steps this process will run: we read them from
    the calling frames. Returns ``(None, [])`` if they are not there (another caller, another
    Dagster version); the caller then asks the instance for the job name.
    """
    try:
        frame: Any = sys._getframe(1)
    except Exception:
        return None, []
    for _ in range(_FRAME_DEPTH):
        if frame is None:
            break
        local = frame.f_locals
        context = local.get("job_context")
        steps = local.get("step_keys")
        if (context is not None and isinstance(steps, list)
                and getattr(context, "run_id", None) == run_id):
            name = getattr(context, "job_name", None)
            return (name if isinstance(name, str) else None,
                    [s for s in steps if isinstance(s, str)])
        frame = frame.f_back
    return None, []
