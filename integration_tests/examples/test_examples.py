"""Every example runs and its logs arrive where the README says.

The ``dagster`` command runs are real: ``dagster job execute -f examples/... -j ... -c ...`` in
a child process with its own DAGSTER_HOME, the example YAML used unchanged (boto3 is pointed at
the moto server by ``AWS_ENDPOINT_URL_CLOUDWATCH_LOGS``; Cloud Logging's endpoint is added by an
overlay ``-c`` file, the way a local override is layered over production YAML). They start
together, once for the module, since each takes seconds of interpreter start-up. ``dagster dev``
loads code exactly as ``dagster definitions validate`` does, which is what is run for it.

The other examples run in this process with ``execute_job`` (multiprocess executor: every step
in its own process, as in a deployment) against the same servers.
"""

from __future__ import annotations

import importlib.util
import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster import DagsterInstance, execute_job
from dagster._core.definitions.reconstruct import ReconstructableJob, ReconstructableRepository
from dagster._core.test_utils import instance_for_test
from logship_cli_support import (
    EXAMPLES,
    PROJECT,
    clean_env,
    finish,
    logs_client,
    shipped_lines,
    start_dagster,
)
from support import ListingFakeCloudLogging

from dagster_logship import flush_all
from dagster_logship.selection import check_started_run, validate_loggers
from dagster_logship.testing import read_events

# test_prod_logs_ships_errors_only_to_cloudwatch reads the whole README stream, which other
# modules (cloudwatch/, test_launchpad.py) write to as well: a moto server of the module's own.
pytestmark = pytest.mark.own_moto_server

RUN_CONFIG = EXAMPLES / "run_config"
ERROR_LINE = "Something to page about: 3 rows failed validation"


class _Runs:
    """Child processes started together; each finished (once) when a test asks for it."""

    def __init__(self, started: dict[str, subprocess.Popen[str]]) -> None:
        self.started = started
        self.done: dict[str, subprocess.CompletedProcess[str]] = {}

    def __getitem__(self, name: str) -> subprocess.CompletedProcess[str]:
        if name not in self.done:
            self.done[name] = finish(self.started[name], timeout=180)
        return self.done[name]

    def close(self) -> None:
        for proc in self.started.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


@pytest.fixture(scope="module", autouse=True)
def dagster_runs(moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Runs]:
    """Every ``dagster`` command of the README, started when the module starts: they run while
    the in-process tests (first in this module) do; the tests at the end wait for them."""
    root = tmp_path_factory.mktemp("dagster_runs")

    def env(name: str, **extra: str) -> dict[str, str]:
        (root / name).mkdir()
        return clean_env(root / name, moto_endpoint, **extra)

    hello = ["job", "execute", "-f", "examples/hello_logs.py"]
    deploy = ["job", "execute", "-f", "examples/deployment.py"]
    commands = {
        "prod_logs": (
            [*hello, "-j", "prod_logs", "-c", "examples/run_config/prod_logs.yaml"],
            env("prod_logs"),
        ),
        "deploy_aws": (
            [*deploy, "-j", "etl"],
            env("deploy_aws", DAGSTER_DEPLOYMENT="aws", DAGSTER_LOG_GROUP="/dagster/deploy-aws",
                AWS_DEFAULT_REGION="eu-west-1"),
        ),
        "validate": (
            ["definitions", "validate", *[
                # hello_logs.py and deployment.py are loaded by `dagster job execute` above
                arg for name in ("code_location", "legacy_repository", "python_logs")
                for arg in ("-f", f"examples/{name}.py")
            ]],
            env("validate"),
        ),
    }
    runs = _Runs({name: start_dagster(args, e) for name, (args, e) in commands.items()})
    try:
        yield runs
    finally:
        runs.close()


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"{result.args}:\n{result.stderr[-4000:]}"
    return result


# -- in this process: execute_job (multiprocess executor) or execute_in_process -----------------


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    with instance_for_test() as inst:
        yield inst


def file_job(name: str, job: str) -> ReconstructableJob:
    return ReconstructableJob.for_file(str(EXAMPLES / f"{name}.py"), job)


def repo_job(name: str, attribute: str, job: str) -> ReconstructableJob:
    repo = ReconstructableRepository.for_file(str(EXAMPLES / f"{name}.py"), attribute)
    return repo.get_reconstructable_job(job)


def in_process(name: str, job: str, instance: DagsterInstance,
               run_config: dict[str, Any]) -> Any:
    """The job run in this process (in-process executor): for what does not need processes."""
    return file_job(name, job).get_definition().execute_in_process(
        run_config=run_config, instance=instance)


def load_yaml(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((RUN_CONFIG / name).read_text())
    return data


def test_prod_logs_env_yaml_reads_the_environment(
    instance: DagsterInstance, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", moto_endpoint)
    monkeypatch.setenv("DAGSTER_LOG_GROUP", "/dagster/from-env")
    monkeypatch.setenv("AWS_REGION", "ap-south-1")
    result = execute_job(file_job("hello_logs", "prod_logs"), instance=instance,
                         run_config=load_yaml("prod_logs_env.yaml"))
    assert result.success
    client = logs_client(moto_endpoint, "ap-south-1")
    events = read_events("/dagster/from-env", f"prod_logs/{result.run_id}", client=client)
    user = {(e["level"], e["message"]) for e in events if e["event_type"] is None}
    assert user == {("INFO", "Hello, world!"), ("ERROR", ERROR_LINE)}
    assert "STEP_SUCCESS" not in {e["event_type"] for e in events}  # DEBUG, below INFO
    group = client.describe_log_groups(logGroupNamePrefix="/dagster/from-env")["logGroups"][0]
    assert group["retentionInDays"] == 30


def test_local_logs_console_at_error(
    instance: DagsterInstance, capfd: pytest.CaptureFixture[str],
) -> None:
    result = in_process("hello_logs", "local_logs", instance, load_yaml("local_logs.yaml"))
    assert result.success
    err = capfd.readouterr().err
    assert ERROR_LINE in err
    assert "Hello, world!" not in err


def test_prod_logs_json_format_gcp(
    instance: DagsterInstance, capfd: pytest.CaptureFixture[str],
) -> None:
    result = in_process("hello_logs", "prod_logs_json", instance, load_yaml("prod_logs_json.yaml"))
    assert result.success
    assert flush_all(10)
    lines = [e for e in shipped_lines(capfd.readouterr().out) if e.get("run_id") == result.run_id]
    by_message = {e["message"]: e for e in lines}
    assert by_message["Hello, world!"]["severity"] == "INFO"
    assert by_message[ERROR_LINE]["severity"] == "ERROR"
    labels = by_message[ERROR_LINE]["logging.googleapis.com/labels"]
    assert labels == {"run_id": result.run_id, "job_name": "prod_logs_json", "step_key": "check_op"}
    assert all(e["level"] != "DEBUG" for e in lines)


def test_code_location_jobs_ship_without_run_config(
    instance: DagsterInstance, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Definitions(loggers=...) + with_active_loggers: the asset job and the op job ship with
    no run config at all; validate_loggers finds only the implicit asset job."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", moto_endpoint)
    monkeypatch.setenv("DAGSTER_LOG_GROUP", "/dagster/code-location")
    monkeypatch.setenv("AWS_REGION", "us-east-2")
    client = logs_client(moto_endpoint, "us-east-2")
    assets = execute_job(repo_job("code_location", "defs", "all_assets"), instance=instance)
    maintenance = repo_job("code_location", "defs", "maintenance").get_definition(
    ).execute_in_process(instance=instance)
    assert assets.success and maintenance.success
    shipped = {e["message"] for e in read_events(
        "/dagster/code-location", f"all_assets/{assets.run_id}", client=client)}
    assert {"loaded 4 orders", "order total 547"} <= shipped
    vacuum = read_events("/dagster/code-location", f"maintenance/{maintenance.run_id}",
                         client=client)
    assert "vacuumed 2 tables" in {e["message"] for e in vacuum}

    repo = ReconstructableRepository.for_file(
        str(EXAMPLES / "code_location.py"), "defs").get_definition()
    problems = validate_loggers(repo)
    assert [(p.job_name, p.logger_key) for p in problems] == [("__ASSET_JOB", "cloudwatch")]


def test_implicit_asset_job_run_gets_a_warning_from_the_sensor(
    instance: DagsterInstance, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What the UI's Materialize launches: the implicit asset job, no run config, so Dagster
    falls back to its console; the sensor writes a WARNING into that run's own event log."""
    from dagster import DagsterEventType, build_run_status_sensor_context

    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", moto_endpoint)
    repo = ReconstructableRepository.for_file(
        str(EXAMPLES / "code_location.py"), "defs").get_definition()
    result = repo.get_job("__ASSET_JOB").execute_in_process(instance=instance)
    assert result.success
    run = instance.get_run_by_id(result.run_id)
    assert run is not None
    start = next(r.dagster_event for r in instance.all_logs(
        result.run_id, of_type=DagsterEventType.RUN_START))
    sensor = repo.get_sensor_def("dagster_logship_logger_check")
    context = build_run_status_sensor_context(
        sensor_name=sensor.name, dagster_event=start, dagster_instance=instance,
        dagster_run=run, repository_def=repo,
    )
    problems = check_started_run(context)
    assert [(p.job_name, p.logger_key) for p in problems] == [("__ASSET_JOB", "cloudwatch")]
    warnings = [r.dagster_event.message or "" for r in instance.all_logs(result.run_id)
                if r.level == logging.WARNING and r.dagster_event is not None]
    assert len(warnings) == 1
    assert warnings[0].startswith("dagster-logship: this run did not start logger 'cloudwatch'")

    # A run of the same code location that did start its logger gets no warning.
    monkeypatch.setenv("DAGSTER_LOG_GROUP", "/dagster/code-location")
    monkeypatch.setenv("AWS_REGION", "us-east-2")
    good = repo.get_job("maintenance").execute_in_process(instance=instance)
    good_run = instance.get_run_by_id(good.run_id)
    assert good_run is not None
    context = build_run_status_sensor_context(
        sensor_name=sensor.name, dagster_event=start, dagster_instance=instance,
        dagster_run=good_run, repository_def=repo,
    )
    assert check_started_run(context) == []
    flush_all(10)


def test_legacy_repository_default_logger_defs(
    instance: DagsterInstance, capfd: pytest.CaptureFixture[str],
) -> None:
    job = repo_job("legacy_repository", "the_repo", "the_job").get_definition()
    result = job.execute_in_process(instance=instance)
    assert result.success
    assert flush_all(10)
    lines = [e for e in shipped_lines(capfd.readouterr().out) if e.get("run_id") == result.run_id]
    asset_line = [e for e in lines if e["message"] == "materializing some_asset"]
    assert len(asset_line) == 1 and asset_line[0]["severity"] == "INFO"
    assert asset_line[0]["step_key"] == "some_asset"


def test_prod_logs_gcp_with_env_project_and_local_overlay(
    instance: DagsterInstance, gcp_server: ListingFakeCloudLogging,
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    """prod_logs_gcp.yaml unchanged, merged with a local overlay as ``-c a.yaml -c b.yaml``
    merges them (Dagster's own merge_yamls)."""
    from dagster_shared.yaml_utils import merge_yamls

    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", PROJECT)
    overlay = tmp_path / "local_endpoint.yaml"
    overlay.write_text(yaml.safe_dump(
        {"loggers": {"gcp": {"config": {"api_endpoint": gcp_server.url}}}}))
    run_config = merge_yamls([str(RUN_CONFIG / "prod_logs_gcp.yaml"), str(overlay)])
    result = in_process("hello_logs", "prod_logs_gcp", instance, run_config)
    assert result.success
    assert flush_all(10)
    entries = [e for e in gcp_server.entries() if e["jsonPayload"].get("run_id") == result.run_id]
    messages = {e["jsonPayload"]["message"]: e for e in entries}
    assert {"Hello, world!", ERROR_LINE} <= set(messages)
    assert all(e["jsonPayload"]["level"] != "DEBUG" for e in entries)  # log_level: INFO
    error = messages[ERROR_LINE]
    assert error["severity"] == "ERROR"
    assert error["logName"] == f"projects/{PROJECT}/logs/dagster"  # project: {env: ...}
    assert error["labels"]["team"] == "data-platform"
    assert error["labels"]["job_name"] == "prod_logs_gcp"
    assert error["insertId"] == error["jsonPayload"]["log_message_id"]


def load_deployment(monkeypatch: pytest.MonkeyPatch, deployment: str) -> Any:
    """examples/deployment.py imported afresh with DAGSTER_DEPLOYMENT set, as a process would."""
    monkeypatch.setenv("DAGSTER_DEPLOYMENT", deployment)
    spec = importlib.util.spec_from_file_location(
        f"logship_example_deployment_{deployment}", EXAMPLES / "deployment.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.defs


def test_deployment_gke_prints_google_structured_json(
    instance: DagsterInstance, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str],
) -> None:
    defs = load_deployment(monkeypatch, "gke")
    assert validate_loggers(defs, ignore_jobs=["__ASSET_JOB"]) == []
    result = defs.resolve_job_def("etl").execute_in_process(instance=instance)
    assert result.success
    assert flush_all(10)
    lines = [e for e in shipped_lines(capfd.readouterr().out) if e.get("run_id") == result.run_id]
    extract = [e for e in lines if e.get("message") == "extracting on deployment gke"]
    assert len(extract) == 1
    assert extract[0]["severity"] == "INFO"
    assert extract[0]["logging.googleapis.com/labels"]["step_key"] == "extract"


def test_deployment_local_uses_the_console_and_ships_nothing(
    instance: DagsterInstance, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str],
) -> None:
    defs = load_deployment(monkeypatch, "local")
    assert validate_loggers(defs) == []  # no dagster-logship logger attached anywhere
    result = defs.resolve_job_def("etl").execute_in_process(instance=instance)
    assert result.success
    captured = capfd.readouterr()
    assert "extracting on deployment local" in captured.err
    assert not shipped_lines(captured.out)


def test_dagster_yaml_python_logs_ship_library_records(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The instance of examples/dagster.yaml: no loggers: in any run config, yet my_lib's
    records (and the run's INFO records) arrive, from the step's own process."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", moto_endpoint)
    settings = yaml.safe_load((EXAMPLES / "dagster.yaml").read_text())
    with instance_for_test(overrides=settings) as instance:
        result = execute_job(file_job("python_logs", "nightly"), instance=instance)
        assert result.success
    events = [e for e in read_events("/dagster/python-logs",
                                     client=logs_client(moto_endpoint, "us-west-2"))
              if e["run_id"] == result.run_id]
    library = [e for e in events if e["logger"] == "my_lib"]
    assert [e["message"] for e in library] == ["my_lib dropped 2 negative rows"]
    assert library[0]["level"] == "WARNING"
    assert library[0]["job_name"] == "nightly" and library[0]["step_key"] == "nightly_clean"
    assert "kept 3 rows" in {e["message"] for e in events}
    assert all(e["level"] != "DEBUG" for e in events)  # handler level INFO


def test_deployment_gcp_ships_the_asset_job(
    instance: DagsterInstance, gcp_server: ListingFakeCloudLogging,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", PROJECT)
    monkeypatch.setenv("GCP_LOGGING_API_ENDPOINT", gcp_server.url)
    defs = load_deployment(monkeypatch, "gcp")
    result = defs.resolve_job_def("report_job").execute_in_process(instance=instance)
    assert result.success
    assert flush_all(10)
    entries = [e for e in gcp_server.entries() if e["jsonPayload"].get("run_id") == result.run_id]
    assert "daily report written" in {e["jsonPayload"]["message"] for e in entries}
    assert {e["logName"] for e in entries} == {f"projects/{PROJECT}/logs/dagster"}
    assert {e["labels"]["job_name"] for e in entries} == {"report_job"}


# -- dagster job execute / dagster definitions validate ----------------------------------------


def test_every_example_loads_as_dagster_dev_loads_it(
    dagster_runs: _Runs,
) -> None:
    result = ok(dagster_runs["validate"])
    for name in ("code_location", "legacy_repository", "python_logs"):
        assert f"Validation successful for code location {name}.py" in result.stdout + result.stderr


def test_prod_logs_ships_errors_only_to_cloudwatch(
    dagster_runs: _Runs, moto_endpoint: str,
) -> None:
    """The docs' prod YAML, unchanged: log_level ERROR, the group, the stream, the region."""
    ok(dagster_runs["prod_logs"])
    events = read_events("/my/cool/cloudwatch/log/group", "very_good_log_stream",
                         client=logs_client(moto_endpoint, "us-west-2"))
    assert [(e["level"], e["message"], e["step_key"], e["job_name"]) for e in events] == [
        ("ERROR", ERROR_LINE, "check_op", "prod_logs")
    ]


def test_deployment_aws_ships_without_any_run_config(
    dagster_runs: _Runs, moto_endpoint: str,
) -> None:
    ok(dagster_runs["deploy_aws"])
    events = read_events("/dagster/deploy-aws", client=logs_client(moto_endpoint, "eu-west-1"))
    user = [e["message"] for e in events if e["event_type"] is None]
    assert user == ["extracting on deployment aws", "loaded 3 rows"]
    assert {e["job_name"] for e in events} == {"etl"}
    run_ids = {e["run_id"] for e in events}
    assert len(run_ids) == 1  # one stream per run: etl/<run_id>
    streams = logs_client(moto_endpoint, "eu-west-1").describe_log_streams(
        logGroupName="/dagster/deploy-aws")["logStreams"]
    assert [s["logStreamName"] for s in streams] == [f"etl/{run_ids.pop()}"]


# -- no silent no-op: every example's production jobs ship when launched with no run config ------


def _module(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(
        f"logship_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("name", "attribute", "ignore"),
    [
        ("hello_logs", "defs", []),
        ("cloudwatch_demo", "defs", []),
        ("gcp_demo", "orders_job", []),
        # Materialize outside an asset job: no default config can reach it (README, sensor).
        ("code_location", "defs", ["__ASSET_JOB"]),
        ("legacy_repository", "the_repo", ["__ASSET_JOB"]),
    ],
)
def test_every_example_starts_its_loggers_on_a_launch_without_run_config(
    name: str, attribute: str, ignore: list[str]
) -> None:
    """What the launchpad does with ``{}``: each example job that attaches one of our loggers
    starts it (checked by Dagster's own resolution of the run config)."""
    target = getattr(_module(name), attribute)
    assert validate_loggers(target, ignore_jobs=ignore) == []


@pytest.mark.parametrize("deployment", ["aws", "gcp", "gke"])
def test_every_deployment_starts_its_loggers_without_run_config(
    monkeypatch: pytest.MonkeyPatch, deployment: str
) -> None:
    monkeypatch.setenv("DAGSTER_LOG_GROUP", "/dagster/deploy")
    defs = load_deployment(monkeypatch, deployment)
    assert validate_loggers(defs, ignore_jobs=["__ASSET_JOB"]) == []


def test_readme_first_example_launched_with_empty_config_ships(
    instance: DagsterInstance, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The README's first example, launched as the launchpad does with ``{}``: its error line
    is in the docs' log group and stream (no flush: the run's end delivered it)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", moto_endpoint)
    job = _module("hello_logs").defs.resolve_job_def("prod_logs")
    result = job.execute_in_process(run_config={}, instance=instance)
    assert result.success
    events = read_events("/my/cool/cloudwatch/log/group", "very_good_log_stream",
                         client=logs_client(moto_endpoint, "us-west-2"), flush=False)
    mine = [e["message"] for e in events if e.get("run_id") == result.run_id]
    assert mine == [ERROR_LINE]  # log_level ERROR, as in prod_logs.yaml
