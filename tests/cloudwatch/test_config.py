"""Configuration: names, templates, retention and tags fail at construction naming the key and
the rule; construction makes no network call; secrets never show; dictConfig works."""

from __future__ import annotations

import logging
import logging.config
import os
import socket
import time
from typing import Any

import pytest

from dagster_logship.handlers.cloudwatch import CloudWatchHandler, console_url
from dagster_logship.shipping import ConfigError, read_spill
from dagster_logship.sinks.cloudwatch import RETENTION_DAYS
from dagster_logship.testing import read_events


@pytest.mark.parametrize(
    "name",
    ["", "a" * 513, "has space", "colon:no", "star*no", "aws/reserved", "ünïcode", None],
)
def test_bad_log_group_names_fail_naming_the_rule(name: Any) -> None:
    with pytest.raises(ConfigError) as info:
        CloudWatchHandler(name, "s")
    assert info.value.key == "log_group_name"
    assert "log_group_name" in str(info.value)
    assert "1-512" in str(info.value) or "aws/" in str(info.value)


@pytest.mark.parametrize("name", ["/a", "A-z_0.9/#x", "a" * 512, "/aws/lambda/mine"])
def test_good_log_group_names(name: str) -> None:
    handler = CloudWatchHandler(name, "s")
    assert handler.log_group_name == name
    handler.close()


@pytest.mark.parametrize(
    ("name", "rule"),
    [("", "1-512"), ("a" * 513, "1-512"), ("a:b", "':' or '*'"), ("a*b", "':' or '*'")],
)
def test_bad_log_stream_names_fail_naming_the_rule(name: str, rule: str) -> None:
    with pytest.raises(ConfigError) as info:
        CloudWatchHandler("/g", name)
    assert info.value.key == "log_stream_name"
    assert rule in str(info.value)


def test_stream_template_placeholders() -> None:
    handler = CloudWatchHandler("/g", "{hostname}/{pid}/{date}/{job_name}/{run_id}/{{lit}}")
    today = time.strftime("%Y-%m-%d", time.gmtime())
    host = socket.gethostname()
    assert handler.log_stream_name == f"{host}/{os.getpid()}/{today}/unknown-job/no-run/{{lit}}"
    handler.close()


@pytest.mark.parametrize(
    ("template", "problem"),
    [("{user}", "unknown placeholder"), ("{pid:05d}", "has a format"), ("{pid!r}", "has a format"),
     ("{", "not a valid template"), ("x}", "not a valid template")],
)
def test_bad_stream_templates_fail(template: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        CloudWatchHandler("/g", template)
    assert info.value.key == "log_stream_name"
    assert problem in str(info.value)


@pytest.mark.parametrize("days", [0, 2, 10, 4000, -1, True, "forever", 7.5])
def test_retention_only_aws_values(days: Any) -> None:
    with pytest.raises(ConfigError) as info:
        CloudWatchHandler("/g", "s", retention_in_days=days)
    assert info.value.key == "retention_in_days"
    assert "3653" in str(info.value)


@pytest.mark.parametrize("days", [*RETENTION_DAYS, None, "30"])
def test_retention_aws_values_accepted(days: Any) -> None:
    CloudWatchHandler("/g", "s", retention_in_days=days).close()


@pytest.mark.parametrize(
    "tags", [{"aws:x": "1"}, {"": "1"}, {"k": 1}, {f"k{i}": "v" for i in range(51)}, ["a"]]
)
def test_bad_tags(tags: Any) -> None:
    with pytest.raises(ConfigError) as info:
        CloudWatchHandler("/g", "s", tags=tags)
    assert info.value.key == "tags"


def test_other_config_errors() -> None:
    with pytest.raises(ConfigError, match="aws_secret_access_key"):
        CloudWatchHandler("/g", "s", aws_access_key_id="AKIA0000")
    with pytest.raises(ConfigError, match="aws_access_key_id"):
        CloudWatchHandler("/g", "s", aws_secret_access_key="only-the-secret")
    with pytest.raises(ConfigError, match="aws_session_token"):
        CloudWatchHandler("/g", "s", aws_session_token="only-the-token")
    with pytest.raises(ConfigError, match="endpoint_url"):
        CloudWatchHandler("/g", "s", endpoint_url="localhost:4566")
    with pytest.raises(ConfigError, match="create_log_group"):
        CloudWatchHandler("/g", "s", create_log_group="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="log_grop"):
        CloudWatchHandler("/g", "s", log_grop="typo")


def test_construction_makes_no_network_call(
    monkeypatch: pytest.MonkeyPatch, make_handler: Any, cw: Any
) -> None:
    # Nothing resolvable: no credentials, no region, a blackhole endpoint. Construction must
    # neither block nor fail; problems surface (once, as diagnostics) when records are sent.
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(key)
    dialled: list[Any] = []
    real_connect = socket.socket.connect

    def spy(self: socket.socket, address: Any) -> Any:
        dialled.append(address)
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", spy)
    started = time.monotonic()
    handler, _ = make_handler(endpoint_url="http://10.255.255.1:9", aws_region=None)
    elapsed = time.monotonic() - started
    assert elapsed < 1.0
    assert ("10.255.255.1", 9) not in dialled
    assert cw.sink_of(handler)._client is None  # built on the first send, on the worker


def test_console_url_escapes_like_the_console() -> None:
    url = console_url("eu-west-1", "/my/group", "job/run#1")
    assert url == (
        "https://eu-west-1.console.aws.amazon.com/cloudwatch/home?region=eu-west-1"
        "#logsV2:log-groups/log-group/$252Fmy$252Fgroup/log-events/job$252Frun$25231"
    )


SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TOKEN = "FwoGZXIvYXdzEXAMPLETOKEN////secret+token="


def test_secrets_never_show(
    moto_endpoint: str, make_handler: Any, cw: Any, tmp_path: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    spill = tmp_path / "spill.jsonl"
    handler, logger = make_handler(
        endpoint_url=moto_endpoint, aws_access_key_id="AKIAEXAMPLEID",
        aws_secret_access_key=SECRET, aws_session_token=TOKEN, spill_path=str(spill),
    )
    cw.inject(handler, "PutLogEvents",
              cw.Fault("UnrecognizedClientException", 400, times=100,
                       message=f"echoing {SECRET} and {TOKEN} back"))
    logger.info("hello")
    assert handler.flush(10)

    shown = [
        repr(handler), str(handler._key), handler.destination, repr(cw.sink_of(handler)),
        capsys.readouterr().err, spill.read_text(), str(handler.stats),
    ]
    for text in shown:
        assert SECRET not in text and TOKEN not in text
    (spilled,) = read_spill(spill)
    assert "credentials rejected" in spilled["logship_spill"]["reason"]


def test_credentials_tell_destinations_apart_by_fingerprint() -> None:
    a = CloudWatchHandler("/g", "s", aws_access_key_id="AKIA1", aws_secret_access_key=SECRET)
    b = CloudWatchHandler("/g", "s", aws_access_key_id="AKIA1", aws_secret_access_key=SECRET + "x")
    try:
        assert a._key != b._key
        assert a.worker is not b.worker
        assert SECRET not in str(a._key)
    finally:
        a.close()
        b.close()


def test_dictconfig(logs: Any) -> None:
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {
                "cloudwatch": {
                    "class": "dagster_logship.handlers.cloudwatch.CloudWatchHandler",
                    "level": "INFO",
                    "log_group_name": "/dictconfig/app",
                    "log_stream_name": "{hostname}-{pid}",
                    "aws_region": "us-east-1",
                    "retention_in_days": 30,
                    "tags": {"app": "demo"},
                    "flush_interval": 0.05,
                }
            },
            "loggers": {"dictconfig.app": {"handlers": ["cloudwatch"], "level": "DEBUG"}},
        }
    )
    app = logging.getLogger("dictconfig.app")
    (handler,) = app.handlers
    assert isinstance(handler, CloudWatchHandler)
    try:
        app.debug("filtered by the handler level")
        app.info("from dictConfig %s", "args")
        assert handler.flush(10)
        events = read_events("/dictconfig/app", handler.log_stream_name, client=logs)
        assert [e["message"] for e in events] == ["from dictConfig args"]
        # dictConfig again (as Dagster does per run) closes the handler; it stays usable.
        logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})
        app.info("after reconfiguration")
        assert handler.flush(10)
        events = read_events("/dictconfig/app", handler.log_stream_name, client=logs)
        assert [e["message"] for e in events][-1] == "after reconfiguration"
    finally:
        app.removeHandler(handler)
        handler.close()


def test_template_values_are_not_templates_themselves() -> None:
    from dagster_logship.handlers.cloudwatch import fill_stream_template

    partial = fill_stream_template("{job_name}/{pid}/{{x}}", {"job_name": "a{pid}:b"}, final=False)
    assert partial == "a{{pid}}-b/{pid}/{{x}}"
    assert fill_stream_template(partial, {"pid": "7"}, final=True) == "a{pid}-b/7/{x}"
