"""``dagster-logship run [DESTINATION] -- COMMAND ...``: run a Dagster process with its own logs
shipped (``dagster-daemon run``, ``dagster-webserver``, ``dagster code-server start``,
``dagster dev``).

The command runs inside this process (its console script's entry point, or ``python -m``), so
the loggers it configures are the ones shipped, and it prints to the console as before. The
destination is read as ``tail`` reads it (``-c`` run config's logger, or flags named like the
config keys) and the handler is built before the command starts: a wrong value fails at once
with the logger's message (exit status 2), not in the middle of a deployment. The command's own
exit status is this command's exit status. See ``dagster_logship.process_logs`` for how.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

from ._common import CliError, Destination, Output, UsageError, one_line

__all__ = ["DEFAULT_STREAM", "add_parser", "build_handler", "run"]

#: One stream per process kind, host, day and process.
DEFAULT_STREAM = "{process_kind}/{hostname}/{date}/{pid}"
#: The logger our own start and exit lines go through (shipped, not printed).
MARKER_LOGGER = "dagster_logship.run"


def add_parser(sub: Any) -> None:
    from .tail import add_destination_flags

    parser = sub.add_parser(
        "run",
        help="run dagster-daemon, dagster-webserver, a code server or `dagster dev` with its "
        "own logs shipped",
        description="Run COMMAND (dagster-daemon run, dagster-webserver, dagster code-server "
        "start, dagster dev, or python -m MODULE) in this process, shipping the records of its "
        "Python loggers to CloudWatch Logs or Cloud Logging while they print as before. Each "
        "event carries process_kind (daemon, webserver, code-server, dev) and, for the daemon, "
        "the daemon's name. The exit status is COMMAND's.",
        usage="%(prog)s [-c CONFIG.yaml | --log-group NAME ... | --project ID ...] [options] "
        "-- COMMAND [ARGS ...]",
    )
    add_destination_flags(parser, stream_flag=True)
    opts = parser.add_argument_group("process")
    opts.add_argument("--level", metavar="LEVEL", type=str.upper,
                      choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
                      help="least level shipped (default: the logger's log_level, INFO)")
    opts.add_argument("--process-kind", metavar="NAME",
                      help="the process_kind field (default: from COMMAND)")
    opts.add_argument("--no-children", action="store_true",
                      help="do not wrap the webserver, daemon and code servers COMMAND starts")
    parser.add_argument("wrapped", nargs=argparse.REMAINDER, metavar="COMMAND",
                        help="after --: the command to run, with its arguments")
    parser.set_defaults(func=run)


def _destination(args: argparse.Namespace, out: Output) -> Destination:
    """The destination, every problem a usage error on one line (with the schema's messages)."""
    from .tail import resolve_destination

    try:
        return resolve_destination(args, out)
    except UsageError:
        raise
    except CliError as exc:
        text = str(exc).rstrip()
        if exc.details:
            text += ": " + "; ".join(one_line(d, 300).rstrip(".") for d in exc.details)
        if exc.fix:
            text += f". Fix: {exc.fix}"
        raise UsageError(text) from None


def build_handler(dest: Destination, process_kind: str) -> logging.Handler:
    """The destination's handler, its stream (CloudWatch) or labels (Cloud Logging) naming the
    process kind. Raises ``ConfigError`` (naming the key) as the logger would."""
    kwargs = dest.handler_kwargs()
    if dest.kind == "cloudwatch":
        from ..handlers.cloudwatch import CloudWatchHandler

        template = dest.raw.get("log_stream_name") or DEFAULT_STREAM
        if isinstance(template, str):
            template = template.replace("{process_kind}", process_kind)
        kwargs["log_stream_name"] = template
        return CloudWatchHandler(**kwargs)
    from ..handlers.gcp import GcpHandler

    labels = dict(kwargs.get("labels") or {})
    labels.setdefault("process_kind", process_kind)
    kwargs["labels"] = labels
    return GcpHandler(**kwargs)


def _child_flags(args: argparse.Namespace) -> list[str]:
    """This command's destination and level flags, for the children it wraps (paths made
    absolute: a child may start in another directory)."""
    from .tail import DESTINATION_FLAGS

    flags: list[str] = []
    for path in args.config or ():
        flags += ["-c", os.path.abspath(path)]
    for flag in ("--logger", "--kind"):
        value = getattr(args, flag[2:])
        if value is not None:
            flags += [flag, value]
    for flag, name in DESTINATION_FLAGS.items():
        value = getattr(args, name, None)
        if value is not None:
            flags += [flag, value]
    if args.level:
        flags += ["--level", args.level]
    return flags


def _exit_status(code: Any) -> int:
    """The status ``sys.exit(code)`` gives, printing a non-int code as Python does."""
    if code is None:
        return 0
    if isinstance(code, bool):
        return int(code)
    if isinstance(code, int):
        return code & 0xFF if code >= 0 else code
    sys.stderr.write(f"{code}\n")
    return 1


def run(args: argparse.Namespace, out: Output) -> int:
    from ..process_logs import (
        CommandError,
        ProcessLogRelay,
        attach,
        process_kind_of,
        resolve_command,
        wrap_children,
    )
    from ..shipping.options import ConfigError

    command = list(args.wrapped or ())
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        raise UsageError("no command after --: give the command to run, such as "
                         "`dagster-logship run --log-group NAME -- dagster-daemon run`")
    if args.process_kind is not None and not args.process_kind.strip():
        raise UsageError("--process-kind: give a name, such as daemon")
    dest = _destination(args, out)
    try:
        wrapped = resolve_command(command)
    except CommandError as exc:
        raise UsageError(str(exc)) from None
    kind = (args.process_kind or process_kind_of(command)).strip()
    level = logging.getLevelName(args.level or str(dest.config.get("log_level") or "INFO"))
    if not isinstance(level, int):
        raise UsageError(f"log_level: got {dest.config.get('log_level')!r}. Fix: use one of "
                         "DEBUG, INFO, WARNING, ERROR, CRITICAL")
    try:
        handler = build_handler(dest, kind)
    except ConfigError as exc:
        raise UsageError(f"destination: {exc}") from None
    except TypeError as exc:
        raise UsageError(f"destination: {exc}") from None
    except ImportError as exc:
        raise CliError(str(exc)) from None

    relay = ProcessLogRelay(handler, kind, level)
    attach(relay)
    marker = logging.getLogger(MARKER_LOGGER)
    marker.setLevel(logging.INFO)
    marker.info("dagster-logship: shipping the logs of `%s` (process kind %s, pid %d)",
                " ".join(command), kind, os.getpid())
    saved_argv = sys.argv
    sys.argv = list(wrapped.sys_argv)
    status = 0
    try:
        try:
            if args.no_children:
                wrapped.run()
            else:
                with wrap_children(_child_flags(args)):
                    wrapped.run()
        finally:
            sys.argv = saved_argv
    except SystemExit as exc:
        status = _exit_status(exc.code)
    except BaseException as exc:  # the command's own failure: shown as Python would show it
        status = 130 if isinstance(exc, KeyboardInterrupt) else 1
        marker.critical("dagster-logship: `%s` ended with %s", " ".join(command),
                        type(exc).__name__, exc_info=True)
        sys.excepthook(type(exc), exc, exc.__traceback__)
    marker.info("dagster-logship: `%s` exited with status %d", " ".join(command), status)
    # Delivery of what is queued is left to the shipping layer's exit hook (at most
    # flush_timeout, then spilled): flushing here as well would make a process whose destination
    # is down wait twice as long.
    return status
