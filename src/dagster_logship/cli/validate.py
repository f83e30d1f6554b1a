"""``dagster-logship validate -f defs.py``: would any job's dagster-logship logger go unused?

The command-line form of :func:`dagster_logship.selection.validate_loggers`, for CI: loads a
Python file (or module) the way ``dagster`` does, finds its ``Definitions``, repositories and
jobs, and lists every dagster-logship logger that a launch (with no ``loggers:`` section, or
with ``--run-config``) would not start. Exit status 1 when there is any.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from typing import Any

from ._common import CliError, Output, UsageError, dagster_error, load_run_configs

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "validate",
        help="list jobs whose dagster-logship loggers a launch would not start",
        description=(
            "Load a code location (-f FILE or -m MODULE) and list every dagster-logship logger "
            "attached to a job that a launch would not start (Dagster silently falls back to its "
            "console logger). Exit status 1 when there is any."
        ),
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("-f", "--python-file", metavar="FILE", help="Python file to load")
    source.add_argument("-m", "--module-name", metavar="MODULE", help="module to import")
    parser.add_argument("-a", "--attribute", metavar="NAME",
                        help="the Definitions, repository or job to check (default: every one)")
    parser.add_argument("-c", "--run-config", metavar="CONFIG.yaml", action="append",
                        help="check launches with this run config instead of none; "
                        "repeatable, merged in order (later wins), as `dagster job execute -c`")
    parser.add_argument("--ignore-job", action="append", default=[], metavar="NAME",
                        help="skip this job (repeatable), e.g. __ASSET_JOB")
    parser.set_defaults(func=run)


def _load(args: argparse.Namespace) -> Any:
    try:
        if args.python_file:
            path = os.path.abspath(args.python_file)
            if not os.path.exists(path):
                raise UsageError(f"{args.python_file}: no such file")
            if not os.path.isfile(path):
                raise UsageError(f"{args.python_file}: not a file (give a Python file)")
            directory = os.path.dirname(path)
            if directory not in sys.path:
                sys.path.insert(0, directory)
            name = "_dagster_logship_validate_" + os.path.splitext(os.path.basename(path))[0]
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                raise CliError(f"{args.python_file}: not a Python file")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
            return module
        return importlib.import_module(args.module_name)
    except CliError:
        raise
    except Exception as exc:
        where = args.python_file or args.module_name
        shown = dagster_error(exc, f"{where}: could not load it")
        if shown is not None:
            raise shown from None
        raise CliError(f"{where}: could not load it ({type(exc).__name__}: {exc})",
                       fix="the same error stops Dagster loading it: fix it there") from None


def _targets(module: Any, attribute: str | None) -> list[Any]:
    from dagster import Definitions, JobDefinition, RepositoryDefinition

    kinds = (Definitions, RepositoryDefinition, JobDefinition)
    if attribute:
        if not hasattr(module, attribute):
            raise CliError(f"no attribute {attribute!r} in {module.__name__}")
        value = getattr(module, attribute)
        if not isinstance(value, kinds):
            raise CliError(f"{attribute!r} is a {type(value).__name__}, not a Definitions, "
                           "repository or job")
        return [value]
    found = [v for v in vars(module).values() if isinstance(v, (Definitions, RepositoryDefinition))]
    if found:
        return found  # their jobs include the module's jobs that they hold
    jobs = [v for v in vars(module).values() if isinstance(v, JobDefinition)]
    if not jobs:
        raise CliError(f"{module.__name__}: no Definitions, repository or job found")
    return jobs


def run(args: argparse.Namespace, out: Output) -> int:
    from ..selection import validate_loggers

    run_config, label = load_run_configs(args.run_config) if args.run_config else (None, "")
    module = _load(args)
    problems = []
    for target in _targets(module, args.attribute):
        try:
            problems.extend(validate_loggers(target, run_config, ignore_jobs=args.ignore_job))
        except Exception as exc:
            headline = f"cannot check with {label}" if label else "cannot check"
            shown = dagster_error(exc, headline)
            if shown is not None:
                raise shown from None
            raise CliError(f"{headline}: {type(exc).__name__}: {exc}") from None
    for problem in problems:
        out.line(f"FAIL  {problem.message}")
    if problems:
        out.line(f"result: {len(problems)} logger(s) would not run")
        return 1
    out.line("result: ok, every dagster-logship logger attached to a job is started")
    return 0
