"""``dagster-logship run``: usage errors, which process a command is, the relay, wrapped children.

The shipping of real daemon and webserver processes is in integration_tests/process_logs.
"""

from __future__ import annotations

import io
import logging
import logging.config
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dagster_logship.cli import main
from dagster_logship.process_logs import (
    CLI_MODULE,
    ProcessLogRelay,
    attach,
    child_command,
    detach,
    process_kind_of,
    resolve_command,
    wrap_children,
)

PY = sys.executable


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


# -- usage errors ---------------------------------------------------------------------------------


def _usage(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    with pytest.raises(SystemExit) as raised:
        status = main(argv)
        raise SystemExit(status)
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    return err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["run", "--log-group", "/g"], "no command after --"),
        (["run", "--log-group", "/g", "--"], "no command after --"),
        (["run", "--log-group", "/g", "--bogus", "--", "dagster-daemon", "run"],
         "unrecognized arguments: --bogus"),
        (["run", "--", "dagster-daemon", "run"], "no destination"),
        (["run", "--log-group", "bad:name", "--", "dagster-daemon", "run"],
         "log_group_name: got 'bad:name'"),
        (["run", "--log-group", "/g", "--log-stream", "{nope}", "--", "dagster-daemon", "run"],
         "log_stream_name: unknown placeholder {nope}"),
        (["run", "--log-group", "/g", "--project", "p", "--", "dagster-daemon", "run"],
         "name two destinations"),
        (["run", "--log-group", "/g", "--", "no-such-command-here"],
         "'no-such-command-here' is not a console script"),
        (["run", "--log-group", "/g", "--", PY, "-m", "no_such_module_here"],
         "no module named 'no_such_module_here'"),
        (["run", "--log-group", "/g", "--level", "LOUD", "--", "dagster-daemon"],
         "--level: invalid choice"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    assert expected in _usage(capsys, argv)


def test_a_bad_config_names_the_key_and_the_fix_and_never_prints_credentials(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "logship.yaml"
    config.write_text(
        "loggers:\n  cloudwatch:\n    config:\n      log_group_name: /dagster/daemon\n"
        "      aws_access_key_id: AKIAEXAMPLEKEYID\n"
        "      aws_secret_access_key: very-secret-value-123\n      overflow: explode\n")
    err = _usage(capsys, ["run", "-c", str(config), "--", "dagster-daemon", "run"])
    assert "overflow: got 'explode'. Fix: use one of block, drop_oldest, drop_newest" in err
    assert "very-secret-value-123" not in err and "AKIAEXAMPLEKEYID" not in err

    config.write_text("loggers:\n  cloudwatch:\n    config:\n      log_group_name: /g\n"
                      "      aws_secret_access_key: very-secret-value-123\n"
                      "      flush_interval: soon\n")
    err = _usage(capsys, ["run", "-c", str(config), "--", "dagster-daemon", "run"])
    assert "root:flush_interval" in err and "Fix:" in err
    assert "very-secret-value-123" not in err


def test_the_console_script_exits_2_without_a_command() -> None:
    script = Path(PY).parent / "dagster-logship"
    result = subprocess.run([str(script), "run", "--log-group", "/g", "--"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith("dagster-logship run: error: no command after --")
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""


# -- which process --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "kind"),
    [
        (["dagster-daemon", "run"], "daemon"),
        (["/venv/bin/dagster-daemon", "run", "-w", "w.yaml"], "daemon"),
        ([PY, "-m", "dagster._daemon", "run"], "daemon"),
        (["dagster-webserver", "-p", "3000"], "webserver"),
        ([PY, "-m", "dagster_webserver", "--port", "1"], "webserver"),
        (["dagit"], "webserver"),
        (["dagster", "code-server", "start", "-f", "defs.py"], "code-server"),
        ([PY, "-m", "dagster", "api", "grpc", "--socket", "/tmp/s"], "code-server"),
        (["dagster", "dev"], "dev"),
        (["dagster", "job", "execute"], "dagster"),
        ([PY, "tool.py"], PY.rsplit("/", 1)[-1]),
        ([], "process"),
    ],
)
def test_process_kind_of(argv: list[str], kind: str) -> None:
    assert process_kind_of(argv) == kind


def test_only_dagster_server_children_of_this_python_are_wrapped() -> None:
    flags = ["--log-group", "/g"]
    for argv in ([PY, "-m", "dagster_webserver", "--port", "1"],
                 [PY, "-m", "dagster._daemon", "run"],
                 [PY, "-m", "dagster", "api", "grpc", "--socket", "s"],
                 [PY, "-m", "dagster", "code-server", "start"]):
        assert child_command(argv, flags) == [PY, "-m", CLI_MODULE, "run", *flags, "--", *argv]
    for argv in ([PY, "-m", "dagster", "api", "execute_run", "{}"],  # a run worker
                 ["/other/python3", "-m", "dagster_webserver"],
                 ["dagster-webserver", "-p", "1"],
                 f"{PY} -m dagster_webserver"):
        assert child_command(argv, flags) is None


def test_resolve_command_finds_console_scripts_and_modules() -> None:
    daemon = resolve_command(["/anywhere/bin/dagster-daemon", "run"])
    assert daemon.describe == "dagster-daemon" and callable(daemon.run)
    assert daemon.sys_argv == ["/anywhere/bin/dagster-daemon", "run"]
    module = resolve_command([PY, "-m", "json.tool", "--help"])
    assert module.sys_argv == ["json.tool", "--help"]


# -- the relay ------------------------------------------------------------------------------------


@pytest.fixture
def relay() -> Iterator[tuple[ProcessLogRelay, Collect]]:
    target = Collect()
    relay = ProcessLogRelay(target, "daemon", logging.INFO)
    attach(relay)
    try:
        yield relay, target
    finally:
        detach(relay)


def test_the_relay_ships_a_marked_copy_and_leaves_the_record_alone(
    relay: tuple[ProcessLogRelay, Collect],
) -> None:
    _, target = relay
    lg = logging.getLogger("dagster.daemon.SensorDaemon")
    lg.setLevel(logging.DEBUG)
    seen = Collect()
    lg.addHandler(seen)
    try:
        lg.info("checking %s", "sensors")
        lg.debug("below the relay's level")
    finally:
        lg.removeHandler(seen)
        lg.setLevel(logging.NOTSET)
    [shipped] = target.records
    assert shipped.getMessage() == "checking sensors"
    assert (shipped.process_kind, shipped.daemon) == ("daemon", "SensorDaemon")  # type: ignore[attr-defined]
    assert [r.getMessage() for r in seen.records] == ["checking sensors", "below the relay's level"]
    assert not hasattr(seen.records[0], "process_kind")


def test_the_relay_survives_dict_config_and_reaches_loggers_that_do_not_propagate(
    relay: tuple[ProcessLogRelay, Collect],
) -> None:
    relay_handler, target = relay
    logging.config.dictConfig({
        "version": 1, "disable_existing_loggers": False,
        "handlers": {"null": {"class": "logging.NullHandler"}},
        "root": {"handlers": ["null"], "level": "WARNING"},
        "loggers": {"uvicorn": {"handlers": ["null"], "level": "INFO", "propagate": False}},
    })
    try:
        assert relay_handler in logging.getLogger().handlers
        assert relay_handler in logging.getLogger("uvicorn").handlers
        logging.getLogger("uvicorn.error").info("Application startup complete.")
        logging.getLogger("some.lib").warning("a warning")
        assert [r.getMessage() for r in target.records] == [
            "Application startup complete.", "a warning"]
    finally:
        logging.getLogger().handlers[:] = [relay_handler]
        logging.getLogger("uvicorn").handlers.clear()
        logging.getLogger("uvicorn").propagate = True


def test_warnings_of_loggers_without_handlers_still_print(
    relay: tuple[ProcessLogRelay, Collect], monkeypatch: pytest.MonkeyPatch,
) -> None:
    printed = io.StringIO()
    last = logging.StreamHandler(printed)
    last.setLevel(logging.WARNING)
    monkeypatch.setattr(logging, "lastResort", last)
    # Only the relay on the root logger (pytest's capture handler would count as a handler).
    monkeypatch.setattr(logging.getLogger(), "handlers", [relay[0]])
    logging.getLogger("lonely.lib").warning("nobody handles me")
    handled = logging.getLogger("handled.lib")
    own = Collect()
    handled.addHandler(own)
    try:
        handled.warning("someone handles me")
    finally:
        handled.removeHandler(own)
    assert printed.getvalue() == "nobody handles me\n"
    assert [r.getMessage() for r in relay[1].records] == ["nobody handles me",
                                                          "someone handles me"]


def test_a_failing_target_never_raises_into_the_process(
    relay: tuple[ProcessLogRelay, Collect], monkeypatch: pytest.MonkeyPatch,
) -> None:
    def boom(record: logging.LogRecord) -> None:
        raise RuntimeError("target broke")

    monkeypatch.setattr(relay[1], "handle", boom)
    logging.getLogger("dagster.daemon").warning("still fine")  # no exception


def test_wrap_children_rewrites_popen_only_inside(tmp_path: Path) -> None:
    from dagster_logship.testing import FakeCloudLogging

    original = subprocess.Popen.__init__
    with FakeCloudLogging() as server, wrap_children(
            ["--project", "p", "--api-endpoint", server.url]):
        proc = subprocess.run([PY, "-m", "dagster_webserver", "--version"],
                              capture_output=True, text=True, timeout=120)
        plain = subprocess.run([PY, "-c", "print('untouched')"], capture_output=True,
                               text=True, timeout=60)
    assert subprocess.Popen.__init__ is original
    assert proc.returncode == 0, proc.stderr
    assert proc.args[2:4] == [CLI_MODULE, "run"]
    assert "dagster-webserver, version" in proc.stdout
    assert plain.args == [PY, "-c", "print('untouched')"] and plain.stdout == "untouched\n"
    # The wrapped child shipped its own start line, as a webserver.
    payloads = [e["jsonPayload"] for e in server.entries()]
    assert [p["process_kind"] for p in payloads if "shipping the logs of" in p["message"]] == [
        "webserver"]
