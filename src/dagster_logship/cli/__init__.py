"""The ``dagster-logship`` command: ``check``, ``tail``, ``replay``, ``validate`` and ``run``.

Errors go to stderr, never as a traceback: a usage error (unknown, missing or conflicting flags, a
``-c`` file that is missing or not YAML, a bad value) is one line and exit status 2; a failure
(including a check that found a problem) is one line and exit status 1, except a Dagster error,
which is shown whole (every message, uncut) with its fix below it; 0 otherwise. Credential values
from configs and the environment are replaced by ``***`` in everything printed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from ._common import CliError, Output, UsageError, dagster_error, one_line

__all__ = ["main"]

PROG = "dagster-logship"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit status 2)."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    from . import check, replay, tail, validate
    from . import run as run_command

    parser = _Parser(
        prog=PROG,
        description="Check, read and replay the logs dagster-logship ships to CloudWatch Logs "
        "and Google Cloud Logging.",
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    check.add_parser(sub)
    tail.add_parser(sub)
    replay.add_parser(sub)
    validate.add_parser(sub)
    run_command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status (the console script exits with it)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    out = Output()
    try:
        status: int = args.func(args, out)
        return status
    except UsageError as exc:
        where = f"{PROG} {args.command}"
        out.error(f"{where}: error: {one_line(str(exc), 1000)} (see {where} --help)")
        return 2
    except CliError as exc:
        out.error(exc.render(f"{PROG} {args.command}: error: "))
        return 1
    except KeyboardInterrupt:
        out.error(f"{PROG} {args.command}: interrupted")
        return 130
    except BrokenPipeError:
        return 1
    except Exception as exc:  # never a traceback; a Dagster error whole, others in one line
        shown = dagster_error(exc, "Dagster refused it")
        if shown is not None:
            out.error(shown.render(f"{PROG} {args.command}: error: "))
        else:
            out.error(f"{PROG} {args.command}: error: {type(exc).__name__}: {one_line(str(exc))}")
        return 1
