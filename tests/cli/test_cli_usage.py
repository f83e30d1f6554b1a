"""What a newcomer types wrong, per subcommand: every usage error is one line on stderr and exit
status 2 (argparse's own and the command's: conflicting flags, a ``-c`` file that is missing or
not YAML, values out of range); several ``-c`` files merge as ``dagster job execute -c`` merges
them; Dagster's own errors are shown whole, with the fix, and exit status 1."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster_shared.merger import deep_merge_dicts
from support import offline_cloud_env

from dagster_logship.cli import main
from dagster_logship.cli._common import deep_merge, load_run_configs
from dagster_logship.testing import mock_cloudwatch

JOBS = """\
from dagster import job, op

from dagster_logship import cloudwatch_logger


@op
def step() -> None: ...


@job(logger_defs={"cloudwatch": cloudwatch_logger})
def prod_logs() -> None: step()
"""


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    offline_cloud_env(monkeypatch, tmp_path)


@pytest.fixture
def logs() -> Iterator[Any]:
    with mock_cloudwatch("us-east-1") as client:
        yield client


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    """Run config files of every kind a newcomer may pass."""
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump({"loggers": {"cloudwatch": {"config": {
        "log_group_name": "/g", "aws_region": "us-east-1"}}}}))
    (tmp_path / "broken.yaml").write_text("loggers: [unclosed\n")
    (tmp_path / "list.yaml").write_text("- loggers\n")
    (tmp_path / "binary.yaml").write_bytes(b"\xff\xfe\x00bad")
    (tmp_path / "defs.py").write_text("from dagster import Definitions\ndefs = Definitions()\n")
    (tmp_path / "spill.jsonl").write_text("")
    return {"good": str(good), "broken": str(tmp_path / "broken.yaml"),
            "list": str(tmp_path / "list.yaml"), "binary": str(tmp_path / "binary.yaml"),
            "missing": str(tmp_path / "missing.yaml"), "dir": str(tmp_path),
            "py": str(tmp_path / "defs.py"), "spill": str(tmp_path / "spill.jsonl")}


def exit_status(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, str, str]:
    """main()'s status, whether argparse raised SystemExit or the command returned it."""
    try:
        code = main(args)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


# (arguments with {file} placeholders, what the one line says)
USAGE_ERRORS: list[tuple[list[str], str]] = [
    # the command itself
    ([], "the following arguments are required: COMMAND"),
    (["explode"], "invalid choice: 'explode'"),
    (["--bogus"], "the following arguments are required: COMMAND"),
    # check
    (["check"], "the following arguments are required: CONFIG.yaml"),
    (["check", "{good}", "--bogus"], "unrecognized arguments: --bogus"),
    (["check", "{missing}"], "missing.yaml: no such file"),
    (["check", "-c", "{good}", "-c", "{missing}"], "missing.yaml: no such file"),
    (["check", "{broken}"], "broken.yaml: not valid YAML"),
    (["check", "{list}"], "list.yaml: a run config is a YAML mapping"),
    (["check", "{binary}"], "binary.yaml: not a text file"),
    (["check", "{dir}"], "is a directory"),
    (["check", "{good}", "--create", "--no-probe"],
     "argument --no-probe: not allowed with argument --create"),
    (["check", "{good}", "--kind", "aws"], "argument --kind: invalid choice: 'aws'"),
    (["check", "{good}", "--logger"], "argument --logger: expected one argument"),
    # tail
    (["tail"], "one of the arguments --run-id --job --stream is required"),
    (["tail", "--run-id", "r", "--job", "j"], "not allowed with argument"),
    (["tail", "--run-id", "r"], "no destination"),
    (["tail", "--run-id", "r", "--bogus"], "unrecognized arguments: --bogus"),
    (["tail", "--run-id", "r", "-c", "{missing}"], "missing.yaml: no such file"),
    (["tail", "--run-id", "r", "-c", "{good}", "-c", "{broken}"], "broken.yaml: not valid YAML"),
    (["tail", "--run-id", "r", "-c", "{good}", "--log-group", "/g"],
     "either with -c CONFIG.yaml or with flags (--log-group), not both"),
    (["tail", "--run-id", "r", "--log-group", "/g", "--project", "p"], "name two destinations"),
    (["tail", "--run-id", "r", "--region", "us-east-1"], "--region without --log-group"),
    (["tail", "--run-id", "r", "--log-group", "/g", "--logger", "cw"], "--logger picks a logger"),
    (["tail", "--run-id", "r", "--log-group", "/g", "--kind", "gcp"],
     "--kind gcp does not match the flags given"),
    (["replay", "{spill}", "--log-group", "/g", "--kind", "gcp"],
     "--kind gcp does not match the flags given"),
    (["tail", "--run-id", "r", "--log-group", "bad group!"], "log_group_name"),
    (["tail", "--run-id", "", "--log-group", "/g"], "--run-id: give the run id"),
    (["tail", "--run-id", "r", "--log-group", "/g", "--since", "soon"], "--since: got 'soon'"),
    (["tail", "--run-id", "r", "--log-group", "/g", "--since=-2h"], "--since: got '-2h'"),
    (["tail", "--run-id", "r", "--log-group", "/g", "--max-polls", "x"], "invalid int value"),
    (["tail", "--run-id", "r", "--log-group", "/g", "--max-polls", "3"], "--max-polls bounds"),
    (["tail", "--run-id", "r", "--log-group", "/g", "--timeout", "3"], "--timeout bounds"),
    (["tail", "--run-id", "r", "--log-group", "/g", "-f", "--poll-interval", "0"],
     "--poll-interval must be > 0"),
    (["tail", "--run-id", "r", "--log-group", "/g", "-f", "--max-polls", "0"],
     "--max-polls must be at least 1"),
    (["tail", "--stream", "s", "--project", "p", "--api-endpoint", "http://127.0.0.1:9"],
     "--stream is for CloudWatch Logs"),
    # replay
    (["replay"], "the following arguments are required: SPILL_FILE"),
    (["replay", "{spill}", "--bogus"], "unrecognized arguments: --bogus"),
    (["replay", "{spill}"], "no destination"),
    (["replay", "{spill}", "-c", "{missing}"], "missing.yaml: no such file"),
    (["replay", "{spill}", "-c", "{list}"], "a run config is a YAML mapping"),
    (["replay", "{spill}", "-c", "{good}", "--region", "us-west-2"], "not both"),
    (["replay", "{spill}", "--log-group", "/g", "--retry-deadline", "-1"],
     "--retry-deadline must be >= 0"),
    (["replay", "{spill}", "--log-group", "/g", "--log-stream", "a:b"], "log_stream_name"),
    # validate
    (["validate"], "one of the arguments -f/--python-file -m/--module-name is required"),
    (["validate", "-f", "{py}", "-m", "mod"], "not allowed with argument"),
    (["validate", "-f", "{py}", "--bogus"], "unrecognized arguments: --bogus"),
    (["validate", "-f", "{missing}"], "missing.yaml: no such file"),
    (["validate", "-f", "{dir}"], "not a file"),
    (["validate", "-f", "{py}", "-c", "{missing}"], "missing.yaml: no such file"),
    (["validate", "-f", "{py}", "-c", "{good}", "-c", "{broken}"], "not valid YAML"),
    (["validate", "-f", "{py}", "--ignore-job"], "expected one argument"),
]


@pytest.mark.parametrize("args, message", USAGE_ERRORS,
                         ids=[" ".join(a) or "(nothing)" for a, _ in USAGE_ERRORS])
def test_usage_errors_exit_2_in_one_line(
    capsys: pytest.CaptureFixture[str], files: dict[str, str], args: list[str], message: str,
) -> None:
    code, out, err = exit_status(capsys, [a.format(**files) for a in args])
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert message in lines[0] and "error:" in lines[0] and "--help" in lines[0]
    assert "Traceback" not in err and out == ""


# -- several -c files ------------------------------------------------------------------------------


def test_deep_merge_is_dagsters() -> None:
    base: dict[str, Any] = {"loggers": {"cw": {"config": {"log_group_name": "/a",
                                                     "tags": {"team": "x"}},
                               "keep": [1, 2]}}, "ops": {"a": {"config": 1}}}
    override = {"loggers": {"cw": {"config": {"log_group_name": "/b", "tags": {"env": "p"}},
                                   "keep": [3]}}, "resources": {}}
    merged = deep_merge(base, override)
    assert merged == deep_merge_dicts(base, override)
    assert merged["loggers"]["cw"]["config"] == {"log_group_name": "/b",
                                                 "tags": {"team": "x", "env": "p"}}
    assert merged["loggers"]["cw"]["keep"] == [3]  # lists are replaced, as in Dagster
    assert base["loggers"]["cw"]["config"]["log_group_name"] == "/a"  # inputs untouched


def test_load_run_configs_later_wins(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("loggers:\n  cw:\n    config: {log_group_name: /a}\n")
    (tmp_path / "b.yaml").write_text("loggers:\n  cw:\n    config: {aws_region: eu-west-1}\n")
    (tmp_path / "empty.yaml").write_text("")  # Dagster reads an empty file as {}
    paths = [str(tmp_path / n) for n in ("a.yaml", "empty.yaml", "b.yaml")]
    merged, label = load_run_configs(paths)
    assert merged == {"loggers": {"cw": {"config": {"log_group_name": "/a",
                                                    "aws_region": "eu-west-1"}}}}
    assert label == " + ".join(paths)


def test_every_subcommand_merges_several_c_files(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, logs: Any,
) -> None:
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump({"loggers": {"cloudwatch": {"config": {
        "log_group_name": "/base", "log_stream_name": "s", "flush_interval": "soon"}}}}))
    prod = tmp_path / "prod.yaml"
    prod.write_text(yaml.safe_dump({"loggers": {"cloudwatch": {"config": {
        "log_group_name": "/prod", "flush_interval": 0.5}}}}))

    code, out, _ = exit_status(capsys, ["check", str(base), "--no-probe"])
    assert code == 1 and 'Value "soon"' in out  # the base alone is invalid
    for args in (["check", str(base), str(prod), "--create"],
                 ["check", "-c", str(base), "-c", str(prod), "--create"]):
        code, out, _ = exit_status(capsys, args)
        assert code == 0, out
        assert "log group /prod, stream s" in out
    assert [g["logGroupName"] for g in logs.describe_log_groups()["logGroups"]] == ["/prod"]

    code, _, err = exit_status(capsys, ["tail", "-c", str(base), "-c", str(prod), "--job", "j"])
    assert code == 0 and "no events found in log group /prod" in err

    spill = tmp_path / "spill.jsonl"
    spill.write_text(json.dumps({"timestamp": "2026-01-01T00:00:00Z", "message": "m",
                                 "log_message_id": "m1",
                                 "logship_spill": {"reason": "t", "destination": "x"}}) + "\n")
    code, out, _ = exit_status(capsys, ["replay", str(spill), "-c", str(base), "-c", str(prod),
                                        "--dry-run"])
    assert code == 0 and "dry run: 1 event(s) would be sent to log group /prod" in out

    (tmp_path / "jobs.py").write_text(JOBS)
    validate = ["validate", "-f", str(tmp_path / "jobs.py"), "-a", "prod_logs"]
    code, _, err = exit_status(capsys, [*validate, "-c", str(base)])
    assert code == 1 and "DagsterInvalidConfigError" in err
    code, out, err = exit_status(capsys, [*validate, "-c", str(base), "-c", str(prod)])
    assert code == 0, out + err


# -- Dagster's errors, whole ---------------------------------------------------------------------


def test_validate_shows_an_invalid_config_error_whole(
    capsys: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump({"loggers": {"cloudwatch": {"config": {
        "log_group_name": "/g", "log_groop": "x", "flush_interval": "soon"}}}}))
    (tmp_path / "jobs.py").write_text(JOBS)
    code, out, err = exit_status(capsys, ["validate", "-f", str(tmp_path / "jobs.py"),
                                          "-a", "prod_logs", "-c", str(config)])
    assert code == 1 and out == ""
    lines = err.strip().splitlines()
    assert lines[0] == (f"dagster-logship validate: error: cannot check with {config}: "
                        "DagsterInvalidConfigError: Error in config for job prod_logs")
    assert lines[1].startswith('    Error 1: Received unexpected config entry "log_groop" at '
                               "path root:loggers:cloudwatch:config. Expected: ")
    assert lines[1].endswith('tags?: { [String]: (String | { env: String }) }? }".')  # uncut
    assert lines[2].startswith("    Error 2: Invalid scalar at path "
                               "root:loggers:cloudwatch:config:flush_interval")
    assert lines[3].startswith("  fix: correct the run config at the paths named above")
    assert len(lines) == 4


def test_validate_shows_loading_errors_whole(
    capsys: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:
    invariant = tmp_path / "invariant.py"
    invariant.write_text(textwrap.dedent("""\
        from dagster import Definitions
        defs = Definitions()
        defs.resolve_job_def("no_such_job")
    """))
    code, _, err = exit_status(capsys, ["validate", "-f", str(invariant)])
    assert code == 1
    lines = [line for line in err.strip().splitlines() if "Warning" not in line
             and not line.startswith("  warnings.warn")]
    assert lines[0].startswith(f"dagster-logship validate: error: {invariant}: could not load "
                               "it: DagsterInvariantViolationError: ")
    assert "no_such_job" in err
    assert lines[-1].startswith("  fix: the code does not load in Dagster either")
    assert "Traceback" not in err

    duplicate = tmp_path / "duplicate.py"
    duplicate.write_text(textwrap.dedent("""\
        from dagster import Definitions, job, op
        from dagster_logship import cloudwatch_logger

        @op
        def step() -> None: ...

        @job(name="same", logger_defs={"cloudwatch": cloudwatch_logger})
        def first() -> None: step()

        @job(name="same")
        def second() -> None: step()

        defs = Definitions(jobs=[first, second])
    """))
    code, _, err = exit_status(capsys, ["validate", "-f", str(duplicate)])
    assert code == 1
    assert err.strip().splitlines() == [
        "dagster-logship validate: error: cannot check: DagsterInvalidDefinitionError: "
        "Duplicate job definition found for job 'same'",
        "  fix: the definitions are not valid in Dagster either: fix what the message names "
        "(`dagster definitions validate -f FILE` shows the same)",
    ]


def test_tail_and_check_show_a_loggers_config_errors_whole(
    capsys: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump({"loggers": {"gcp": {"config": {
        "api_endpoint": "http://127.0.0.1:9", "labels": {"team": 7}, "flush_timeout": "x"}}}}))
    code, out, err = exit_status(capsys, ["tail", "-c", str(config), "--job", "j"])
    assert code == 1 and out == ""
    lines = err.strip().splitlines()
    assert lines[0] == ("dagster-logship tail: error: loggers.gcp.config is not valid for "
                        "gcp_logger (2 error(s), as Dagster reports them)")
    assert [line.split(":")[0] for line in lines[1:3]] == ["    Error 1", "    Error 2"]
    assert "flush_timeout" in err and "team" in err
    assert lines[3].startswith("  fix: correct loggers.gcp.config")
    code, out, _ = exit_status(capsys, ["check", str(config)])
    assert code == 1
    assert "  FAIL  loggers.gcp.config is not valid for gcp_logger (2 error(s)" in out
    assert "          Error 2: " in out and "          fix: correct loggers.gcp.config" in out
