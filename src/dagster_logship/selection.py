"""Make the loggers a job selects really run, and say so loudly when they would not.

Dagster starts a logger only when its key is named under ``loggers:`` in the run config; a run
launched without that section silently gets Dagster's console logger instead, so production logs
never reach CloudWatch or Cloud Logging (dagster issues 20084, 23984). What Dagster 1.x offers,
and what this module builds on:

- a job's default run config (``to_job(config=...)``, ``@job(config=...)``,
  ``define_asset_job(config=...)``) is used when a launch gives no ``loggers:`` section; a launch
  that names a logger replaces that logger's whole default config;
- ``Definitions(loggers=...)`` / ``@repository(default_logger_defs=...)`` attach loggers to every
  job but name them in no run config; the implicit asset job (the UI's *Materialize*,
  declarative automation) cannot carry a default run config at all;
- nothing in user code runs at the start of a run whose loggers were not selected, except a run
  status sensor in the daemon, which can still write a warning into that run's event log.

Hence three tools: :func:`with_active_loggers` (default run config naming the loggers),
:func:`validate_loggers` / :func:`assert_loggers_active` (a check for a test or CI), and
:func:`logger_check_sensor` (a warning in the run's own log when a run started without them).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from dagster import (
    DagsterRunStatus,
    DefaultSensorStatus,
    Definitions,
    JobDefinition,
    LoggerDefinition,
    RepositoryDefinition,
    RunStatusSensorContext,
    ScheduleDefinition,
    SensorDefinition,
    run_status_sensor,
)
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,
)
from dagster._core.errors import DagsterInvalidConfigError

from .loggers.cloudwatch import cloudwatch_logger
from .loggers.gcp import gcp_logger
from .loggers.json_console import json_console_logger

__all__ = [
    "IMPLICIT_ASSET_JOB_NAME",
    "LoggerProblem",
    "LoggersNotActiveError",
    "assert_loggers_active",
    "check_started_run",
    "logger_check_sensor",
    "logger_kind",
    "loggers_run_config",
    "validate_loggers",
    "with_active_loggers",
]

#: The job Dagster builds for asset materializations launched outside an asset job.
IMPLICIT_ASSET_JOB_NAME = "__ASSET_JOB"
_SENSOR_NAME = "dagster_logship_logger_check"

_KINDS = {
    id(cloudwatch_logger.logger_fn): "cloudwatch_logger",
    id(gcp_logger.logger_fn): "gcp_logger",
    id(json_console_logger.logger_fn): "json_console_logger",
}
_DESTINATIONS = {
    "cloudwatch_logger": "CloudWatch Logs",
    "gcp_logger": "Cloud Logging",
    "json_console_logger": "JSON lines on stdout",
}

LoggerConfigs = Mapping[str, Mapping[str, Any] | None]
T = TypeVar("T", JobDefinition, UnresolvedAssetJobDefinition, Definitions)
R = TypeVar("R")


def logger_kind(logger_def: LoggerDefinition) -> str | None:
    """``cloudwatch_logger``, ``gcp_logger``, ``json_console_logger`` (also ``.configured()``
    copies of them), or None for any other logger."""
    return _KINDS.get(id(getattr(logger_def, "logger_fn", None)))


def loggers_run_config(loggers: LoggerConfigs) -> dict[str, Any]:
    """The run config section that starts these loggers: ``{"loggers": {key: {"config": ...}}}``.

    Pass it as a job's ``config=`` (``to_job``, ``@job``, ``define_asset_job``) so that every
    launch starts the loggers without naming them; ``None`` means the logger's defaults.
    """
    return {
        "loggers": {key: {"config": dict(config or {})} for key, config in loggers.items()}
    }


def _record_copy(record: R, **changes: Any) -> R:
    """A copy of a Dagster record (Definitions, asset job) built again through its constructor."""
    try:
        from dagster_shared.record import copy
    except ImportError:  # pragma: no cover - dagster < 1.10 used namedtuples
        return record._replace(**changes)  # type: ignore[attr-defined,no-any-return]
    return copy(record, **changes)


def _merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _default_config(name: str, config: Any, loggers: LoggerConfigs) -> dict[str, Any]:
    if config is None:
        config = {}
    if hasattr(config, "to_config_dict"):  # dagster.RunConfig
        config = config.to_config_dict()
    if not isinstance(config, Mapping):
        raise TypeError(
            f"with_active_loggers: job {name!r} has a {type(config).__name__} as its config; "
            f"only a dict can be extended. Put {loggers_run_config(loggers)!r} into it yourself"
        )
    return _merge(config, loggers_run_config(loggers))


def _shipping_keys(logger_defs: Mapping[str, LoggerDefinition]) -> dict[str, None]:
    return {key: None for key, ldef in logger_defs.items() if logger_kind(ldef) is not None}


def _job_with_active_loggers(
    job: JobDefinition,
    loggers: LoggerConfigs | None,
    logger_defs: Mapping[str, LoggerDefinition] | None,
) -> JobDefinition:
    attached = dict(logger_defs) if logger_defs is not None else dict(job.loggers)
    wanted = dict(loggers) if loggers is not None else _shipping_keys(attached)
    unknown = sorted(set(wanted) - set(attached))
    if unknown:
        raise KeyError(
            f"with_active_loggers: job {job.name!r} has no logger {', '.join(unknown)} "
            f"(its loggers: {', '.join(sorted(attached)) or 'none'}). Attach it with "
            "to_job(logger_defs=...) / @job(logger_defs=...) or Definitions(loggers=...)"
        )
    config = _default_config(job.name, job._original_config_argument, wanted)
    kwargs: dict[str, Any] = {"config": config}
    if logger_defs is not None:
        kwargs["logger_defs"] = dict(logger_defs)
    new_job = job._copy(**kwargs)
    try:
        new_job.run_config_schema  # noqa: B018 - validates the default config now, not at launch
    except DagsterInvalidConfigError as exc:
        errors = "; ".join(" ".join(e.message.split()) for e in exc.errors) or str(exc)
        raise DagsterInvalidConfigError(  # type: ignore[no-untyped-call]
            f"with_active_loggers: job {job.name!r}: the loggers' config is not complete: "
            f"{errors}",
            exc.errors,
            config,
        ) from None
    return new_job


def with_active_loggers(
    target: T,
    loggers: LoggerConfigs | None = None,
    *,
    logger_defs: Mapping[str, LoggerDefinition] | None = None,
    check_sensor: bool = True,
) -> T:
    """A copy of ``target`` whose default run config names its loggers, so they always run.

    ``target`` is a ``JobDefinition``, an asset job from ``define_asset_job`` or a
    ``Definitions``. ``loggers`` maps logger keys to their config (``None``: the defaults); when
    omitted, every dagster-logship logger attached to the job is activated with its defaults
    (``cloudwatch_logger`` needs at least ``log_group_name``). ``logger_defs`` attaches loggers
    at the same time (a job only). The job's existing dict config is kept.

    For a ``Definitions``, every job (in ``jobs=``, or only targeted by a schedule or a sensor,
    which are pointed at the new job) gets the loggers of ``Definitions(loggers=...)`` (or its
    own) named in its default config, and ``check_sensor`` adds :func:`logger_check_sensor`.
    Asset materializations launched outside an asset job (the UI's Materialize, declarative
    automation) run Dagster's implicit asset job, which cannot carry a default run config:
    launch them through an asset job, or configure the handlers in dagster.yaml (README: "Make
    the selected loggers run, on every launch").

    A launch whose run config names one of these loggers replaces that logger's whole default
    config (Dagster does not merge below the logger's key).
    """
    if isinstance(target, JobDefinition):
        return _job_with_active_loggers(target, loggers, logger_defs)
    if isinstance(target, UnresolvedAssetJobDefinition):
        if logger_defs is not None:
            raise TypeError(
                "with_active_loggers: asset jobs take their loggers from Definitions(loggers=...)"
            )
        if loggers is None:
            raise TypeError(
                f"with_active_loggers: asset job {target.name!r} gets its loggers only from "
                "Definitions(loggers=...): name them, e.g. {'cloudwatch': {'log_group_name': ...}}"
            )
        return _record_copy(target, config=_default_config(target.name, target.config, loggers))
    if isinstance(target, Definitions):
        if logger_defs is not None:
            raise TypeError("with_active_loggers: give a Definitions its loggers with loggers=")
        return _definitions_with_active_loggers(target, loggers, check_sensor)
    raise TypeError(
        f"with_active_loggers takes a JobDefinition, an asset job or a Definitions, not "
        f"{type(target).__name__} (for a graph: graph.to_job(logger_defs=..., "
        "config=loggers_run_config(...)))"
    )


def _definitions_with_active_loggers(
    defs: Definitions, loggers: LoggerConfigs | None, check_sensor: bool
) -> Definitions:
    """Activate the loggers of every job of ``defs``, also those only a schedule or a sensor
    targets, and point the schedules and sensors at the new jobs (Dagster rejects two
    different definitions of one job name)."""
    default_defs = dict(defs.loggers or {})
    done: dict[str, Any] = {}

    def activate(job: Any) -> Any:
        if not isinstance(job, (JobDefinition, UnresolvedAssetJobDefinition)):
            return job
        if job.name in done:
            return done[job.name]
        new: Any = job
        if isinstance(job, UnresolvedAssetJobDefinition):
            wanted = _pick(loggers, default_defs)
            if wanted:
                new = with_active_loggers(job, wanted, check_sensor=False)
        else:
            own = job.has_specified_loggers
            attached = dict(job.loggers) if own else default_defs
            wanted = _pick(loggers, attached)
            if wanted:
                new = _job_with_active_loggers(job, wanted, None if own else attached)
        done[job.name] = new
        return new

    jobs = [activate(job) for job in defs.jobs or ()]
    schedules = [_retarget_schedule(schedule, activate) for schedule in defs.schedules or ()]
    sensors = [_retarget_sensor(sensor, activate) for sensor in defs.sensors or ()]
    if check_sensor and not any(getattr(s, "name", None) == _SENSOR_NAME for s in sensors):
        sensors.append(logger_check_sensor())
    return _record_copy(defs, jobs=jobs, schedules=schedules, sensors=sensors)


def _retarget_schedule(schedule: Any, activate: Any) -> Any:
    if isinstance(schedule, ScheduleDefinition):
        if schedule.has_job:
            new = activate(schedule.job)
            if new is not schedule.job:
                return schedule.with_updated_job(new)
        return schedule
    job = getattr(schedule, "job", None)  # a partitioned schedule of an asset job
    if isinstance(job, UnresolvedAssetJobDefinition):
        new = activate(job)
        if new is not job:
            return _record_copy(schedule, job=new)
    return schedule


def _retarget_sensor(sensor: Any, activate: Any) -> Any:
    if not isinstance(sensor, SensorDefinition) or not sensor.has_jobs:
        return sensor
    jobs = list(sensor.jobs)
    new = [activate(job) for job in jobs]
    if any(a is not b for a, b in zip(new, jobs, strict=True)):
        return sensor.with_updated_jobs(new)
    return sensor


def _pick(
    loggers: LoggerConfigs | None, attached: Mapping[str, LoggerDefinition]
) -> dict[str, Mapping[str, Any] | None]:
    """The loggers to activate on a job with ``attached`` loggers."""
    if loggers is None:
        return dict(_shipping_keys(attached))
    return {key: config for key, config in loggers.items() if key in attached}


# -- checking ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoggerProblem:
    """One logger that is attached to a job but would not run."""

    job_name: str
    logger_key: str
    kind: str
    message: str

    def __str__(self) -> str:
        return self.message


class LoggersNotActiveError(AssertionError):
    """Raised by :func:`assert_loggers_active`; ``problems`` lists every logger concerned."""

    def __init__(self, problems: Sequence[LoggerProblem]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"- {p.message}" for p in self.problems)
        super().__init__(f"{len(self.problems)} logger(s) would not run:\n{lines}")


def _jobs_of(target: Any) -> list[JobDefinition]:
    if isinstance(target, JobDefinition):
        return [target]
    if isinstance(target, Definitions):
        target = target.get_repository_def()
    if isinstance(target, RepositoryDefinition):
        return list(target.get_all_jobs())
    if isinstance(target, Iterable):
        return [job for item in target for job in _jobs_of(item)]
    raise TypeError(
        f"validate_loggers takes a JobDefinition, Definitions or RepositoryDefinition, not "
        f"{type(target).__name__}"
    )


def _started_loggers(job: JobDefinition, run_config: Mapping[str, Any] | None) -> set[str] | None:
    """The logger keys Dagster would start for ``run_config`` (None: cannot tell, config needed)."""
    from dagster._core.system_config.objects import ResolvedRunConfig

    try:
        return set(ResolvedRunConfig.build(job, dict(run_config or {})).loggers)
    except DagsterInvalidConfigError:
        if run_config is not None:
            raise
    default = job.run_config  # a dict default config, when the job has one
    if isinstance(default, Mapping):
        named = default.get("loggers")
        return set(named) if isinstance(named, Mapping) else set()
    return None


def _problem(job: JobDefinition, key: str, kind: str, run_config: Any) -> LoggerProblem:
    where = _DESTINATIONS[kind]
    if run_config is not None:
        cause = f"the given run config does not name it under `loggers:` ({key})"
    else:
        cause = f"a launch whose run config has no `loggers: {key}:` section does not start it"
    if job.name == IMPLICIT_ASSET_JOB_NAME and run_config is None:
        message = (
            f"asset materializations outside an asset job (job {IMPLICIT_ASSET_JOB_NAME}: the "
            f"UI's Materialize, declarative automation) get logger {key!r} ({kind}) from "
            "Definitions(loggers=...), but that job cannot carry a default run config, so "
            f"Dagster uses its console logger and nothing reaches {where}. Fix: materialize "
            "through define_asset_job(..., config=loggers_run_config(...)), configure the "
            "handler in dagster.yaml (python_logs.dagster_handler_config), or add "
            "logger_check_sensor() to be warned in each such run"
        )
    else:
        message = (
            f"job {job.name!r}: logger {key!r} ({kind}) is attached, but {cause}: Dagster "
            f"silently uses its console logger and nothing reaches {where}. Fix: "
            f"with_active_loggers(job, {{{key!r}: {{...}}}}) or config=loggers_run_config(...) "
            f"on the job, or name `{key}` under `loggers:` in every launch"
        )
    return LoggerProblem(job.name, key, kind, message)


def validate_loggers(
    target: Any,
    run_config: Mapping[str, Any] | None = None,
    *,
    ignore_jobs: Iterable[str] = (),
) -> list[LoggerProblem]:
    """Every dagster-logship logger attached to a job that a launch would not start.

    ``target``: a job, a ``Definitions`` (every job, the implicit asset job included) or a
    repository. Without ``run_config`` the question is "launched with no ``loggers:`` section"
    (the job's default run config applies); with one, "launched with this run config". Jobs
    whose run config cannot be built without more config are skipped unless ``run_config``
    is given. Call it in a test: ``assert not validate_loggers(defs)``.
    """
    skip = set(ignore_jobs)
    problems: list[LoggerProblem] = []
    for job in _jobs_of(target):
        if job.name in skip:
            continue
        ours = {key: logger_kind(ldef) for key, ldef in job.loggers.items()}
        ours = {key: kind for key, kind in ours.items() if kind is not None}
        if not ours:
            continue
        started = _started_loggers(job, run_config)
        if started is None:
            continue
        for key, kind in sorted(ours.items()):
            if key not in started and kind is not None:
                problems.append(_problem(job, key, kind, run_config))
    return problems


def assert_loggers_active(
    target: Any,
    run_config: Mapping[str, Any] | None = None,
    *,
    ignore_jobs: Iterable[str] = (),
) -> None:
    """Raise :class:`LoggersNotActiveError` naming every logger :func:`validate_loggers` finds."""
    problems = validate_loggers(target, run_config, ignore_jobs=ignore_jobs)
    if problems:
        raise LoggersNotActiveError(problems)


# -- the run-start warning ------------------------------------------------------------------------

def check_started_run(context: RunStatusSensorContext) -> list[LoggerProblem]:
    """The body of :func:`logger_check_sensor`: warn in the run's event log when a run of this
    code location started without one of its dagster-logship loggers."""
    run = context.dagster_run
    repo = context.repository_def
    if repo is None or not repo.has_job(run.job_name):
        return []
    job = repo.get_job(run.job_name)
    try:
        if run.asset_selection:
            job = job.get_subset(asset_selection=set(run.asset_selection))
        elif run.op_selection:
            job = job.get_subset(op_selection=list(run.op_selection))
        problems = validate_loggers(job, run.run_config)
    except Exception:  # the run's own config error is reported by Dagster itself
        return []
    for problem in problems:
        message = (
            f"dagster-logship: this run did not start logger {problem.logger_key!r} "
            f"({problem.kind}): its run config does not name it under `loggers:`, so Dagster "
            f"used its console logger and this run's logs are not in "
            f"{_DESTINATIONS[problem.kind]}. Fix: give job {problem.job_name!r} a default run "
            "config naming it (with_active_loggers / loggers_run_config), or name it in the "
            "launch's run config"
        )
        _report(context, message, logging.WARNING)
        context.log.warning(message)
    for line in _shipped_to(job, run):
        _report(context, line, logging.INFO)
    return problems


def _shipped_to(job: JobDefinition, run: Any) -> list[str]:
    """One line per dagster-logship logger this run started, saying where its logs go (read from
    the run's resolved config; nothing for a logger whose config cannot be read here)."""
    from dagster._core.system_config.objects import ResolvedRunConfig

    try:
        started = ResolvedRunConfig.build(job, dict(run.run_config or {})).loggers
    except Exception:
        return []
    lines = []
    for key, ldef in sorted(job.loggers.items()):
        kind = logger_kind(ldef)
        if kind is None or key not in started:
            continue
        try:
            entry = started[key]
            config = entry.get("config") if isinstance(entry, Mapping) else None
            where = _destination_of(kind, config if isinstance(config, Mapping) else {}, run)
        except Exception:
            where = _DESTINATIONS[kind]
        lines.append(
            f"dagster-logship: this run's logs are shipped by logger {key!r} ({kind}) to {where}"
        )
    return lines


def _destination_of(kind: str, config: Mapping[str, Any], run: Any) -> str:
    if kind == "cloudwatch_logger":
        from .handlers.cloudwatch import console_url, fill_stream_template

        values = {"job_name": run.job_name, "run_id": run.run_id}
        stream = fill_stream_template(config.get("log_stream_name") or "{job_name}/{run_id}",
                                      values, final=False)
        group = config["log_group_name"]
        region = config.get("aws_region")
        text = f"CloudWatch Logs group {group!r}, stream {stream!r}"
        if config.get("endpoint_url"):
            return f"{text} at {config['endpoint_url']}"
        if "{" in stream:  # {pid}, {hostname} or {date}: one stream per process
            return f"{text} (region {region or 'of the run worker'})"
        return f"{text}: {console_url(region, group, stream)}"
    if kind == "gcp_logger":
        project = config.get("project") or "(the project of the run's credentials)"
        text = f"Cloud Logging projects/{project}/logs/{config.get('log_name') or 'dagster'}"
        return f"{text} at {config['api_endpoint']}" if config.get("api_endpoint") else text
    return f"JSON lines on the {config.get('stream') or 'stdout'} of the run's processes"


def _report(context: RunStatusSensorContext, message: str, level: int) -> None:
    """An engine event in the run's own event log (shown on the run's page)."""
    from dagster._core.events import DagsterEvent, DagsterEventType, EngineEventData

    run = context.dagster_run
    event = DagsterEvent(
        event_type_value=DagsterEventType.ENGINE_EVENT.value,
        job_name=run.job_name,
        message=message,
        event_specific_data=EngineEventData({}),
    )
    context.instance.report_dagster_event(event, run_id=run.run_id, log_level=level)


def logger_check_sensor(
    name: str = _SENSOR_NAME,
    default_status: DefaultSensorStatus = DefaultSensorStatus.RUNNING,
    minimum_interval_seconds: int | None = None,
) -> SensorDefinition:
    """A run status sensor that writes a WARNING into every started run of this code location
    that did not start one of its dagster-logship loggers.

    It is the only code that runs for such a run (the logger itself is never built), and it
    needs the daemon (``dagster dev`` runs one). Running by default; add it to
    ``Definitions(sensors=[...])`` (``with_active_loggers(defs)`` does).
    """

    @run_status_sensor(
        run_status=DagsterRunStatus.STARTED,
        name=name,
        default_status=default_status,
        minimum_interval_seconds=minimum_interval_seconds,
        description="Warns in a run's log when it started without its dagster-logship loggers.",
    )
    def _check(context: RunStatusSensorContext) -> None:
        check_started_run(context)

    return _check
