"""Keep a CloudWatch destination on the endpoint that was in force when its handler was built.

Why: the client is made on the first send, on the worker thread, possibly long after the handler
was built. Two things can change in between, and both would send records somewhere the user
never meant:

- moto's ``mock_aws`` patches botocore for the whole process while it is active. A logger built
  inside ``with mock_aws():`` whose records are still queued when the block ends would otherwise
  send them to real AWS, or into the next test's fresh mock;
- ``AWS_ENDPOINT_URL_CLOUDWATCH_LOGS`` / ``AWS_ENDPOINT_URL`` (boto3's endpoint variables) may be
  set only around the code that builds the logger (a test's ``monkeypatch``).

So the handler resolves the endpoint variables at build time, and notes which moto mock (if any)
was active; the sink refuses to send when that is no longer the case, and the records are
spilled with the reason instead. No moto import: moto is looked up only if already loaded.
"""

from __future__ import annotations

import os
import sys
from typing import Any

__all__ = ["active_moto_mock", "configured_endpoint", "pin_mismatch"]

_TRUE = {"1", "true", "yes", "on"}


def configured_endpoint() -> str | None:
    """The endpoint boto3 would take from the environment for CloudWatch Logs, or None.

    Mirrors botocore's order for the variables (service-specific first, then the global one,
    both ignored under ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS``); the shared config file's
    ``services`` section is left to botocore, since it does not change under a running process.
    """
    if os.environ.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").strip().lower() in _TRUE:
        return None
    for name in ("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", "AWS_ENDPOINT_URL"):
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def active_moto_mock() -> Any:
    """A token for the moto mock active now (``mock_aws``), or None when none is.

    The token is the object moto's HTTP patch makes anew each time the outermost mock starts, so
    a later mock is told apart from the one a handler was built in; the patch flag alone (True)
    when that object cannot be found.
    """
    models = sys.modules.get("moto.core.models")
    if models is None:
        return None
    stubber = getattr(models, "botocore_stubber", None)
    if not getattr(stubber, "enabled", False):
        return None
    patcher = getattr(getattr(models, "responses_mock", None), "_patcher", None)
    return patcher if patcher is not None else True


def pin_mismatch(pinned: Any) -> str | None:
    """Why sending now would leave the mock state ``pinned`` was taken in, or None if it would not.

    ``pinned`` is what :func:`active_moto_mock` returned at build time (True when only "a mock
    was active" could be told).
    """
    current = active_moto_mock()
    if pinned is None:
        if current is None:
            return None
        return (
            "a moto mock (mock_aws) started after this logger was built, which sent to a real "
            "endpoint; the records are not sent into the mock"
        )
    if current is None:
        return (
            "this logger was built inside moto's mock_aws, which has ended; the records are not "
            "sent to real AWS. Fix: let the run finish inside the mock (our loggers flush at the "
            "end of a run), or call dagster_logship.flush_all() before the mock ends"
        )
    if pinned is not True and current is not True and current is not pinned:
        return (
            "this logger was built inside a moto mock (mock_aws) that has ended; a newer mock is "
            "active and the records are not sent into it. Fix: call dagster_logship.flush_all() "
            "before the first mock ends"
        )
    return None
