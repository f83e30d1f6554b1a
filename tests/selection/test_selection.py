"""Selection helpers with real Dagster: default run config that starts the loggers, the check
that finds loggers a launch would not start, and the run-start warning."""

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from dagster import (
    AssetExecutionContext,
    ConfigMapping,
    DagsterEventType,
    DagsterInstance,
    Definitions,
    OpExecutionContext,
    RunRequest,
    ScheduleDefinition,
    asset,
    build_run_status_sensor_context,
    colored_console_logger,
    define_asset_job,
    graph,
    job,
    op,
    repository,
    sensor,
)
from dagster._core.errors import DagsterInvalidConfigError
from dagster._core.test_utils import instance_for_test

from dagster_logship import cloudwatch_logger, flush_all, json_console_logger
from dagster_logship.loggers.gcp import gcp_logger
from dagster_logship.selection import (
    LoggersNotActiveError,
    assert_loggers_active,
    check_started_run,
    logger_check_sensor,
    logger_kind,
    loggers_run_config,
    validate_loggers,
    with_active_loggers,
)


@op
def hello(context: OpExecutionContext) -> None:
    context.log.info("Hello, world!")


@graph
def hello_graph() -> None:
    hello()


@asset
def an_asset(context: AssetExecutionContext) -> int:
    context.log.info("asset says hi")
    return 1


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    with instance_for_test() as inst:
        yield inst


def printed(capfd: pytest.CaptureFixture[str], run_id: str) -> list[dict[str, Any]]:
    assert flush_all(10)
    out = capfd.readouterr().out
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("run_id") == run_id]


def json_job(name: str = "json_job", **kwargs: Any) -> Any:
    return hello_graph.to_job(name=name, logger_defs={"json": json_console_logger}, **kwargs)


def test_loggers_run_config_names_each_logger() -> None:
    assert loggers_run_config({"cloudwatch": {"log_group_name": "/g"}, "json": None}) == {
        "loggers": {"cloudwatch": {"config": {"log_group_name": "/g"}}, "json": {"config": {}}}
    }


def test_logger_kind_knows_ours_and_their_configured_copies() -> None:
    assert logger_kind(cloudwatch_logger) == "cloudwatch_logger"
    assert logger_kind(gcp_logger) == "gcp_logger"
    assert logger_kind(json_console_logger.configured({"format": "gcp"})) == "json_console_logger"
    assert logger_kind(colored_console_logger) is None


def test_an_attached_logger_does_not_run_without_run_config(
    instance: DagsterInstance, capfd: pytest.CaptureFixture[str],
) -> None:
    """The trap: Dagster silently uses its console logger."""
    result = json_job().execute_in_process(instance=instance)
    assert printed(capfd, result.run_id) == []


def test_with_active_loggers_starts_them_on_every_launch(
    instance: DagsterInstance, capfd: pytest.CaptureFixture[str],
) -> None:
    active = with_active_loggers(json_job(), {"json": {"format": "gcp"}})
    for run_config in (None, {}, {"loggers": {}}, {"ops": {}}):
        result = active.execute_in_process(run_config=run_config, instance=instance)
        lines = printed(capfd, result.run_id)
        assert [line["message"] for line in lines] == ["Hello, world!"]
        assert lines[0]["severity"] == "INFO"  # the default config's format: gcp
    # A launch that names the logger replaces its whole default config.
    named = active.execute_in_process(
        run_config={"loggers": {"json": {"config": {"log_level": "DEBUG"}}}}, instance=instance)
    lines = printed(capfd, named.run_id)
    assert "STEP_START" in {line["event_type"] for line in lines}
    assert all("severity" not in line for line in lines)


def test_with_active_loggers_defaults_to_our_loggers_and_keeps_job_config() -> None:
    @op(config_schema={"n": int})
    def needs_config(context: OpExecutionContext) -> None:
        context.log.info(f"n={context.op_config['n']}")

    @job(logger_defs={"json": json_console_logger, "console": colored_console_logger},
         config={"ops": {"needs_config": {"config": {"n": 3}}}})
    def configured() -> None:
        needs_config()

    active = with_active_loggers(configured)
    assert active.run_config == {
        "ops": {"needs_config": {"config": {"n": 3}}}, "loggers": {"json": {"config": {}}}}
    assert validate_loggers(active) == []
    assert active.name == "configured" and set(active.loggers) == {"json", "console"}


def test_with_active_loggers_refuses_what_would_fail_later() -> None:
    prod = hello_graph.to_job(name="prod", logger_defs={"cloudwatch": cloudwatch_logger})
    with pytest.raises(DagsterInvalidConfigError, match=r"job 'prod'.*log_group_name"):
        with_active_loggers(prod)  # cloudwatch_logger needs log_group_name
    with pytest.raises(KeyError, match="has no logger gcp"):
        with_active_loggers(prod, {"gcp": None})
    mapped = hello_graph.to_job(
        name="mapped", logger_defs={"json": json_console_logger},
        config=ConfigMapping(config_fn=lambda c: {}, config_schema={}))
    with pytest.raises(TypeError, match="ConfigMapping"):
        with_active_loggers(mapped, {"json": None})
    with pytest.raises(TypeError, match=r"graph\.to_job"):
        with_active_loggers(hello_graph, {"json": None})  # type: ignore[type-var]


def test_with_active_loggers_can_attach_too(
    instance: DagsterInstance, capfd: pytest.CaptureFixture[str],
) -> None:
    plain = hello_graph.to_job(name="plain")
    active = with_active_loggers(plain, {"json": None},
                                 logger_defs={"json": json_console_logger})
    result = active.execute_in_process(instance=instance)
    assert [line["message"] for line in printed(capfd, result.run_id)] == ["Hello, world!"]


def test_definitions_every_job_schedule_and_sensor_target(
    instance: DagsterInstance, capfd: pytest.CaptureFixture[str],
) -> None:
    asset_job = define_asset_job("asset_job", selection=[an_asset])
    op_job = hello_graph.to_job(name="op_job")
    only_scheduled = hello_graph.to_job(name="only_scheduled")
    own = hello_graph.to_job(name="own", logger_defs={"console": colored_console_logger})

    @sensor(job=op_job)
    def poke() -> Iterator[RunRequest]:
        yield RunRequest()

    defs = Definitions(
        assets=[an_asset],
        jobs=[asset_job, op_job, own],
        schedules=[ScheduleDefinition(job=only_scheduled, cron_schedule="0 * * * *"),
                   ScheduleDefinition(job=asset_job, cron_schedule="0 6 * * *")],
        sensors=[poke],
        loggers={"json": json_console_logger},
    )
    before = {(p.job_name, p.logger_key) for p in validate_loggers(defs)}
    assert before == {("asset_job", "json"), ("op_job", "json"), ("only_scheduled", "json"),
                      ("__ASSET_JOB", "json")}

    active = with_active_loggers(defs)
    Definitions.validate_loadable(active)  # one definition per job name
    after = validate_loggers(active)
    assert [(p.job_name, p.logger_key) for p in after] == [("__ASSET_JOB", "json")]
    assert "cannot carry a default run config" in after[0].message
    assert validate_loggers(active, ignore_jobs=["__ASSET_JOB"]) == []
    sensors = [s.name for s in active.sensors or ()]
    assert sensors.count("dagster_logship_logger_check") == 1
    assert "dagster_logship_logger_check" not in [
        s.name for s in with_active_loggers(defs, check_sensor=False).sensors or ()]

    result = active.resolve_job_def("asset_job").execute_in_process(instance=instance)
    assert "asset says hi" in {line["message"] for line in printed(capfd, result.run_id)}
    scheduled = active.resolve_job_def("only_scheduled").execute_in_process(instance=instance)
    assert "Hello, world!" in {line["message"] for line in printed(capfd, scheduled.run_id)}
    own_job = active.resolve_job_def("own")
    assert set(own_job.loggers) == {"console"} and own_job.run_config is None


def test_validate_loggers_with_a_launch_config_and_a_repository() -> None:
    prod = hello_graph.to_job(name="prod", logger_defs={"cloudwatch": cloudwatch_logger})
    [problem] = validate_loggers(prod)
    assert problem.kind == "cloudwatch_logger"
    assert "Dagster silently uses its console logger and nothing reaches CloudWatch" in str(
        problem)
    named = {"loggers": {"cloudwatch": {"config": {"log_group_name": "/g"}}}}
    assert validate_loggers(prod, named) == []
    [other] = validate_loggers(prod, {"loggers": {}})
    assert "the given run config does not name it" in other.message
    with pytest.raises(LoggersNotActiveError, match="1 logger"):
        assert_loggers_active(prod)

    @repository(default_logger_defs={"gcp": gcp_logger})
    def repo() -> list[Any]:
        return [an_asset, define_asset_job("the_job", selection="*")]

    assert {p.job_name for p in validate_loggers(repo)} == {"the_job", "__ASSET_JOB"}

    @op(config_schema={"n": int})
    def needs(context: OpExecutionContext) -> None:
        pass

    @job(logger_defs={"json": json_console_logger})
    def needs_run_config() -> None:
        needs()

    assert validate_loggers(needs_run_config) == []  # cannot tell without its run config
    with pytest.raises(DagsterInvalidConfigError):
        validate_loggers(needs_run_config, {"loggers": {}})


def test_the_sensor_warns_only_in_runs_that_did_not_start_the_logger(
    instance: DagsterInstance,
) -> None:
    @op
    def other(context: OpExecutionContext) -> None:
        context.log.info("other")

    @job(logger_defs={"json": json_console_logger}, config=loggers_run_config({"json": None}))
    def two_ops() -> None:
        hello()
        other()

    @job(logger_defs={"json": json_console_logger})
    def forgot() -> None:
        hello()

    repo = Definitions(jobs=[two_ops, forgot], sensors=[logger_check_sensor()]
                       ).get_repository_def()

    def check(result: Any) -> tuple[list[str], list[str]]:
        run = instance.get_run_by_id(result.run_id)
        assert run is not None
        start = next(r.dagster_event for r in instance.all_logs(
            result.run_id, of_type=DagsterEventType.RUN_START))
        context = build_run_status_sensor_context(
            sensor_name="dagster_logship_logger_check", dagster_event=start,
            dagster_instance=instance, dagster_run=run, repository_def=repo)
        problems = [p.logger_key for p in check_started_run(context)]
        logged = [r.dagster_event.message or "" for r in instance.all_logs(result.run_id)
                  if r.level == logging.WARNING and r.dagster_event is not None]
        said[result.run_id] = [
            r.dagster_event.message or "" for r in instance.all_logs(result.run_id)
            if r.level == logging.INFO and r.dagster_event is not None
            and (r.dagster_event.message or "").startswith("dagster-logship:")
        ]
        return problems, logged

    said: dict[str, list[str]] = {}
    shipped = two_ops.execute_in_process(instance=instance)
    assert check(shipped) == ([], [])
    # The run that started its logger says where its logs went, in its own event log.
    assert said[shipped.run_id] == [
        "dagster-logship: this run's logs are shipped by logger 'json' (json_console_logger) "
        "to JSON lines on the stdout of the run's processes"
    ]
    subset = two_ops.execute_in_process(instance=instance, op_selection=["other"])
    assert check(subset) == ([], [])
    problems, logged = check(forgot.execute_in_process(instance=instance))
    assert problems == ["json"]
    assert len(logged) == 1
    assert "did not start logger 'json' (json_console_logger)" in logged[0]
    flush_all(10)
