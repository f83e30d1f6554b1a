"""The ``dagster-logship`` command: ``check``, ``tail``, ``replay`` and ``validate``.

Errors are one readable line on stderr, never a traceback: exit status 2 for a usage error, 1 for
a failure (including a check that found a problem), 0 otherwise. Credential values from configs
and the environment are replaced by ``***`` in everything printed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from ._common import CliError, Output, one_line

__all__ = ["main"]

PROG = "dagster-logship"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit status 2)."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    from . import check, replay, tail, validate

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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status (the console script exits with it)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    out = Output()
    try:
        status: int = args.func(args, out)
        return status
    except CliError as exc:
        out.error(f"{PROG} {args.command}: error: {one_line(str(exc), 1000)}")
        return 1
    except KeyboardInterrupt:
        out.error(f"{PROG} {args.command}: interrupted")
        return 130
    except BrokenPipeError:
        return 1
    except Exception as exc:  # one line, never a traceback
        out.error(f"{PROG} {args.command}: error: {type(exc).__name__}: {one_line(str(exc))}")
        return 1
