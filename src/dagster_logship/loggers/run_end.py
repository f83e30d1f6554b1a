"""Which Dagster events end a run, or a step process: the points where a handler flushes.

Why: Dagster never flushes or closes its loggers, and a test reads the destination right after
``execute_in_process`` returns (dagster-aws's own tests do, inside ``mock_aws``). So a handler
delivers what it holds when it sees the run's terminal event, before Dagster goes on. A step
process of the multiprocess executor never sees the run's start or end: there the step's own
terminal event is the last thing it logs, so it flushes then. In the process that runs the
whole run (it logged RUN_START), a step's end does not flush: the run's end will.

Matched on the event's type value (a plain string), so no Dagster import is needed.
"""

from __future__ import annotations

from typing import Any

__all__ = ["RUN_END", "RUN_START", "STEP_END", "boundary"]

RUN_START = "run_start"
RUN_END = "run_end"
STEP_END = "step_end"

_BOUNDARIES = {
    # DagsterEventType values (legacy PIPELINE_* strings) and names
    "PIPELINE_START": RUN_START,
    "RUN_START": RUN_START,
    "PIPELINE_SUCCESS": RUN_END,
    "PIPELINE_FAILURE": RUN_END,
    "PIPELINE_CANCELED": RUN_END,
    "RUN_SUCCESS": RUN_END,
    "RUN_FAILURE": RUN_END,
    "RUN_CANCELED": RUN_END,
    "STEP_SUCCESS": STEP_END,
    "STEP_FAILURE": STEP_END,
    "STEP_UP_FOR_RETRY": STEP_END,
}


def boundary(dagster_event: Any) -> str | None:
    """RUN_START, RUN_END or STEP_END for an event that marks one, else None. Never raises."""
    try:
        value = getattr(dagster_event, "event_type_value", None)
        return _BOUNDARIES.get(value) if type(value) is str else None
    except Exception:
        return None
