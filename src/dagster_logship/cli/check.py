"""``dagster-logship check CONFIG.yaml``: will the loggers of this run config deliver?

For each of our loggers under ``loggers:``: the config is processed by the logger's own schema
and the handler built from it (so any value the logger refuses is refused here, with the same
message); credentials and region (or project) are resolved the way the sink resolves them; one
probe event is sent. Nothing is created unless ``--create`` is given: without it a missing log
group or stream is reported with what would create it, and the IAM action that needs.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
from collections.abc import Sequence
from typing import Any

from ._common import CliError, Destination, Output, logger_entries, one_line, process_logger_config

__all__ = ["add_parser", "run"]

PROBE_MESSAGE = "dagster-logship check: probe event (safe to ignore)"
#: What fills {job_name} and {run_id} of a stream template for the probe.
PROBE_JOB, PROBE_RUN = "dagster-logship-check", "probe"


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "check",
        usage="%(prog)s [-h] CONFIG.yaml [CONFIG.yaml ...] | -c CONFIG.yaml [-c ...]\n"
        "       [--logger KEY] [--kind {cloudwatch,gcp,json}] [--create | --no-probe]",
        help="validate a run config's loggers, resolve credentials, send one probe event",
        description=(
            "Validate the dagster-logship loggers under `loggers:` of a run config YAML, "
            "resolve their credentials the way the logger will, and send one probe event. "
            "Nothing is created unless --create is given. Exit status 0 when every logger "
            "checked can deliver, 1 otherwise."
        ),
    )
    parser.add_argument("config", metavar="CONFIG.yaml", nargs="*",
                        help="run config YAML file(s); several are merged in order (later "
                        "wins), as `dagster job execute -c a.yaml -c b.yaml` merges them")
    parser.add_argument("-c", "--config", dest="config_flags", metavar="CONFIG.yaml",
                        action="append", default=[],
                        help="the same, as a flag (repeatable), for those used to `dagster -c`")
    parser.add_argument("--logger", metavar="KEY", help="check only this key under loggers:")
    parser.add_argument("--kind", choices=("cloudwatch", "gcp", "json"),
                        help="which logger KEY is, when its config keys do not tell")
    sending = parser.add_mutually_exclusive_group()
    sending.add_argument(
        "--create", action="store_true",
        help="create the log group / stream the logger would create, then send the probe "
        "(a stream template is filled with job_name=dagster-logship-check, run_id=probe)",
    )
    sending.add_argument("--no-probe", action="store_true",
                        help="validate and resolve credentials only; send nothing")
    parser.set_defaults(func=run)


class _Report:
    def __init__(self, out: Output) -> None:
        self.out = out
        self.failed = False

    def ok(self, text: str) -> None:
        self.out.line(f"  ok    {text}")

    def fail(self, text: str, details: Sequence[str] = (), fix: str | None = None) -> None:
        """A failed item; ``details`` (a Dagster error's messages) shown whole below it."""
        self.failed = True
        self.out.line(f"  FAIL  {text}")
        for detail in details:
            for row in detail.rstrip().splitlines():
                self.out.line(f"          {row}")
        if fix:
            self.out.line(f"          fix: {fix}")

    def note(self, text: str) -> None:
        self.out.line(f"  note  {text}")


def run(args: argparse.Namespace, out: Output) -> int:
    from ._common import UsageError, load_run_configs

    paths = [*args.config, *args.config_flags]
    if not paths:
        raise UsageError("the following arguments are required: CONFIG.yaml (or -c CONFIG.yaml)")
    run_config, label = load_run_configs(paths)
    entries = logger_entries(run_config, label, args.logger, args.kind)
    checked = failed = 0
    for key, kind, raw in entries:
        if kind is None:
            out.line(f"logger {key!r}: not a dagster-logship logger (skipped; use --kind)")
            continue
        checked += 1
        report = _Report(out)
        out.line(f"logger {key!r} ({_name(kind)})")
        try:
            dest = process_logger_config(key, kind, raw, out)
            _check(dest, args, report)
        except CliError as exc:
            report.fail(str(exc), exc.details, exc.fix)
        failed += report.failed
    if not checked:
        raise CliError(f"{label}: no dagster-logship logger under `loggers:`")
    verdict = "ok" if not failed else f"{failed} of {checked} failed"
    out.line(f"result: {checked} logger(s) checked, {verdict}")
    return 1 if failed else 0


def _name(kind: str) -> str:
    return {"cloudwatch": "cloudwatch_logger", "gcp": "gcp_logger"}.get(kind, "json_console_logger")


def _check(dest: Destination, args: argparse.Namespace, report: _Report) -> None:
    if dest.kind == "cloudwatch":
        _check_cloudwatch(dest, args, report)
    elif dest.kind == "gcp":
        _check_gcp(dest, args, report)
    else:
        _check_json(dest, report)


def _build_handler(dest: Destination, report: _Report) -> Any:
    """Build (and release) the handler the logger would build: same validation, same message."""
    from ..shipping.options import ConfigError

    kwargs = dest.handler_kwargs()
    try:
        if dest.kind == "cloudwatch":
            from ..handlers.cloudwatch import CloudWatchHandler, fill_stream_template

            kwargs["log_stream_name"] = fill_stream_template(
                kwargs["log_stream_name"], {"job_name": PROBE_JOB, "run_id": PROBE_RUN},
                final=False,
            )
            handler: Any = CloudWatchHandler(**kwargs)
        elif dest.kind == "gcp":
            from ..handlers.gcp import GcpHandler

            handler = GcpHandler(**kwargs)
        else:
            from ..handlers.stream import JsonStreamHandler

            handler = JsonStreamHandler(**kwargs)
    except ConfigError as exc:
        raise CliError(f"config: {exc}") from None
    except ImportError as exc:
        raise CliError(f"not installed: {exc}") from None
    try:
        from ..loggers._config import coerce_level

        coerce_level(dest.config.get("log_level", "INFO"))
    except ConfigError as exc:
        handler.close()
        raise CliError(f"config: {exc}") from None
    handler.close()
    report.ok(f"config: valid ({dest.describe()})")
    return handler


# -- CloudWatch -----------------------------------------------------------------------------------

_CREDENTIAL_SOURCES = {
    "explicit": "the logger config (aws_access_key_id / aws_secret_access_key)",
    "env": "environment variables (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)",
    "shared-credentials-file": "the shared credentials file (~/.aws/credentials)",
    "config-file": "the AWS config file (~/.aws/config)",
    "assume-role": "an assumed role (profile)",
    "assume-role-with-web-identity": "a web identity token (AWS_WEB_IDENTITY_TOKEN_FILE)",
    "sso": "AWS IAM Identity Center (SSO)",
    "container-role": "the container's task role",
    "iam-role": "the instance profile (EC2 metadata)",
    "custom-process": "a credential_process",
}


def _iam_actions(config: dict[str, Any]) -> list[str]:
    actions = ["logs:PutLogEvents"]
    if config.get("create_log_stream", True):
        actions.append("logs:CreateLogStream")
    if config.get("create_log_group", True):
        actions.append("logs:CreateLogGroup")
        if config.get("retention_in_days") is not None:
            actions.append("logs:PutRetentionPolicy")
    return actions


def _aws_session(config: dict[str, Any]) -> Any:
    """The boto3 session the sink builds (same arguments), to see what it resolves."""
    import boto3

    return boto3.session.Session(
        aws_access_key_id=config.get("aws_access_key_id"),
        aws_secret_access_key=config.get("aws_secret_access_key"),
        aws_session_token=config.get("aws_session_token"),
        region_name=config.get("aws_region"),
        profile_name=config.get("aws_profile"),
    )


def _check_cloudwatch(dest: Destination, args: argparse.Namespace, report: _Report) -> None:
    config = dest.config
    handler = _build_handler(dest, report)
    group, stream = handler.log_group_name, handler.log_stream_name
    report.note(f"IAM actions the logger needs: {', '.join(_iam_actions(config))}")
    try:
        from botocore import exceptions as bex

        session = _aws_session(config)
        credentials = session.get_credentials()
    except ImportError:
        raise CliError("boto3 is not installed: pip install 'dagster-logship[aws]'") from None
    except bex.ProfileNotFound as exc:
        report.fail(f"credentials: {exc}: fix aws_profile")
        return
    except bex.BotoCoreError as exc:
        report.fail(f"credentials: {one_line(str(exc))}")
        return
    if credentials is None:
        report.fail(
            "credentials: none found (logger config, environment, profile, container or "
            "instance role): set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, aws_profile, or run "
            "with a role"
        )
        return
    source = _CREDENTIAL_SOURCES.get(credentials.method, credentials.method)
    key_id = getattr(credentials, "access_key", None) or ""
    shown = f" (access key …{key_id[-4:]})" if len(key_id) >= 8 else ""
    report.ok(f"credentials: from {source}{shown}")
    if not session.region_name:
        report.fail("region: none: set aws_region in the logger config, or AWS_DEFAULT_REGION "
                    "(boto3 does not read AWS_REGION)")
        return
    report.ok(f"region: {session.region_name}")
    if args.no_probe:
        report.note("probe not sent (--no-probe)")
        return
    _probe_cloudwatch(dest, group, stream, args.create, report)


def _probe_cloudwatch(
    dest: Destination, group: str, stream: str, create: bool, report: _Report
) -> None:
    from ..shipping.retry import BatchRejectedError, RetryableError
    from ..sinks.cloudwatch import CloudWatchSink
    from ..sinks.endpoint_pin import active_moto_mock
    from ._common import probe_item

    config = dest.config
    sink = CloudWatchSink(
        group, stream,
        aws_region=config.get("aws_region"),
        aws_access_key_id=config.get("aws_access_key_id"),
        aws_secret_access_key=config.get("aws_secret_access_key"),
        aws_session_token=config.get("aws_session_token"),
        aws_profile=config.get("aws_profile"),
        endpoint_url=config.get("endpoint_url"),
        # Without --create nothing is created: a missing group or stream fails the probe.
        create_log_group=bool(create and config.get("create_log_group", True)),
        create_log_stream=bool(create and config.get("create_log_stream", True)),
        retention_in_days=config.get("retention_in_days"),
        tags=config.get("tags"),
        connect_timeout=5.0,
        read_timeout=15.0,
        # The client is made here and now: the endpoint (moto's mock too) is the current one.
        moto_mock=active_moto_mock(),
    )
    said = io.StringIO()
    try:
        # The sink reports what it does not fail on (retention not applied) on stderr.
        with contextlib.redirect_stderr(said):
            result = sink.send([probe_item(sink, PROBE_MESSAGE)])
    except BatchRejectedError as exc:
        text = exc.diagnostic or exc.reason
        if "not found" in exc.reason and not create:
            _report_missing(sink, dest, group, stream, report)
        elif "not found" in exc.reason:
            report.fail(f"destination: {text}")
        else:
            report.fail(f"probe: {_access_hint(text, group) or one_line(text)}")
        return
    except RetryableError as exc:
        report.fail(f"probe: CloudWatch Logs did not accept it now ({one_line(str(exc))}); "
                    "try again")
        return
    finally:
        sink.close()
    for line in said.getvalue().splitlines():
        if "retention_in_days" in line and "not applied" in line:
            hint = _access_hint(line, group)
            report.fail(f"retention: {hint or one_line(line.split(': ', 1)[-1])}")
    if result is not None and result.rejected:
        reasons = ", ".join(reason for _, reason in result.rejected)
        report.fail(f"probe: rejected by CloudWatch Logs ({reasons})")
        return
    report.ok(f"probe: one event delivered to log group {group}, stream {stream}")


_OPERATIONS = ("CreateLogGroup", "CreateLogStream", "PutLogEvents", "PutRetentionPolicy")


def _access_hint(text: str, group: str) -> str | None:
    """One clear line for an access-denied answer, naming the IAM action that is missing.

    AWS answers AccessDeniedException (the sink names the permission then); some endpoints
    (moto's IAM emulation) answer a bare 403, which the sink reports with the raw body.
    """
    denied = ("AccessDenied" in text or "not authorized" in text or "(403)" in text
              or ": 403" in text)
    if not denied:
        return None
    operation = next((op for op in _OPERATIONS if op in text), None)
    if operation is None:
        return None
    return (f"access denied on {operation}: the AWS identity in use lacks the IAM permission "
            f"logs:{operation} on log group {group!r}; grant it")


def _report_missing(
    sink: Any, dest: Destination, group: str, stream: str, report: _Report
) -> None:
    """Say which of group and stream is missing (best effort) and what would create it."""
    config = dest.config
    group_exists: bool | None = None
    try:
        client = sink.client()
        pages = client.get_paginator("describe_log_groups").paginate(logGroupNamePrefix=group)
        group_exists = any(
            g.get("logGroupName") == group for page in pages for g in page.get("logGroups", [])
        )
    except Exception:  # DescribeLogGroups is not a permission the logger needs
        group_exists = None
    if group_exists is False:
        what = f"log group {group!r} does not exist"
        if config.get("create_log_group", True):
            fix = ("the logger creates it at its first send (needs logs:CreateLogGroup and "
                   "logs:CreateLogStream); run again with --create to create it now and send "
                   "the probe")
        else:
            fix = "create_log_group is false, so the logger will not create it: create it"
    else:
        what = (f"log stream {stream!r} does not exist in log group {group!r}"
                if group_exists else f"log group {group!r} or its stream {stream!r} is missing")
        if config.get("create_log_stream", True):
            fix = ("the logger creates it at its first send (needs logs:CreateLogStream); run "
                   "again with --create to create it now and send the probe")
        else:
            fix = "create_log_stream is false, so the logger will not create it: create it"
    report.fail(f"destination: {what} (nothing created): {fix}")


# -- Cloud Logging --------------------------------------------------------------------------------


def _check_gcp(dest: Destination, args: argparse.Namespace, report: _Report) -> None:
    handler = _build_handler(dest, report)
    target = handler.target
    report.note("IAM the logger needs: roles/logging.logWriter (logging.logEntries.create)")
    if target.api_endpoint:
        project = target.project or os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get(
            "GCLOUD_PROJECT")
        report.ok(f"credentials: anonymous (api_endpoint {target.api_endpoint} is set)")
    else:
        try:
            import google.auth
            from google.auth import exceptions as auth_exceptions
            from google.cloud.logging import Client
        except ImportError:
            raise CliError(
                "google-cloud-logging is not installed: pip install 'dagster-logship[gcp]'"
            ) from None
        try:
            credentials, found = google.auth.default(scopes=list(Client.SCOPE))
        except auth_exceptions.DefaultCredentialsError as exc:
            report.fail(
                f"credentials: none usable ({one_line(str(exc), 200)}): run `gcloud auth "
                "application-default login`, set GOOGLE_APPLICATION_CREDENTIALS, or run on "
                "Google Cloud with a service account"
            )
            return
        who = getattr(credentials, "service_account_email", None)
        path = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
        source = f"the file in GOOGLE_APPLICATION_CREDENTIALS ({path})" if path else (
            "Application Default Credentials")
        report.ok(f"credentials: {type(credentials).__name__} from {source}"
                  + (f", {who}" if who else ""))
        project = target.project or found
    if not project:
        report.fail("project: none: set `project` in the logger config (or GOOGLE_CLOUD_PROJECT)")
        return
    report.ok(f"project: {project}")
    if args.create:
        report.note("Cloud Logging creates a log at its first entry: nothing to create")
    if args.no_probe:
        report.note("probe not sent (--no-probe)")
        return
    from ..shipping.retry import BatchRejectedError, RetryableError
    from ..sinks.gcp import GcpSink
    from ._common import probe_item

    sink = GcpSink(target)
    try:
        result = sink.send([probe_item(sink, PROBE_MESSAGE)])
    except BatchRejectedError as exc:
        report.fail(f"probe: {exc.diagnostic or exc.reason}")
        return
    except RetryableError as exc:
        report.fail(f"probe: Cloud Logging did not accept it now ({one_line(str(exc))}); "
                    "try again")
        return
    finally:
        sink.close()
    if result is not None and (result.rejected or result.retry):
        reasons = [reason for _, reason in result.rejected] or ["transient error, try again"]
        report.fail(f"probe: refused by Cloud Logging ({'; '.join(reasons)})")
        return
    report.ok(f"probe: one entry written to projects/{project}/logs/{target.log_name}")


# -- JSON console ---------------------------------------------------------------------------------


def _check_json(dest: Destination, report: _Report) -> None:
    _build_handler(dest, report)
    report.note("json_console_logger writes to the process's own output: no probe to send")
