"""One line per process and destination saying where a run's logs can be read.

To the ``dagster_logship`` Python logger when the host configured logging that shows it at INFO
(never to our own loggers: the line would ship to the place it points to), else one line on
stderr, so that a terminal running ``dagster job execute`` or ``dagster dev`` shows it.
"""

from __future__ import annotations

import logging
import os
import threading
from urllib.parse import quote

from ..shipping.spill import diagnostic

__all__ = ["announce", "gcp_console_url"]

_lock = threading.Lock()
_said: set[tuple[int, str]] = set()
_module_logger = logging.getLogger("dagster_logship")


def announce(destination: str, line: str) -> None:
    """Say ``line`` once per process for ``destination``."""
    with _lock:
        if (os.getpid(), destination) in _said:
            return
        _said.add((os.getpid(), destination))
    if _module_logger.isEnabledFor(logging.INFO) and _module_logger.hasHandlers():
        _module_logger.info(line)
    else:
        diagnostic(line)


def gcp_console_url(project: str, log_name: str) -> str:
    """The Logs Explorer page showing one log of a project."""
    query = quote(f'logName="projects/{project}/logs/{quote(log_name, safe="")}"', safe="")
    return f"https://console.cloud.google.com/logs/query;query={query}?project={project}"
