"""What the subcommands share: run config loading, destinations, secret scrubbing, event lines.

A destination is read the way the logger reads it: the YAML's ``loggers:`` entry is processed by
the logger's own Dagster config schema (defaults applied, ``{env: VAR}`` resolved), then the
handler is built from it, so every value the logger would refuse is refused here with the same
message.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import IO, Any

__all__ = [
    "KINDS",
    "CliError",
    "Destination",
    "Output",
    "UsageError",
    "dagster_error",
    "deep_merge",
    "destination_from_flags",
    "format_event",
    "load_run_config",
    "load_run_configs",
    "logger_entries",
    "one_line",
    "parse_timestamp",
    "probe_item",
    "process_logger_config",
    "single_destination",
]

#: logger kinds the commands know, by the name users pass to --kind
KINDS = ("cloudwatch", "gcp", "json")
_LOGGER_NAMES = {
    "cloudwatch": "cloudwatch_logger", "gcp": "gcp_logger", "json": "json_console_logger"
}

_CW_KEYS = frozenset({
    "log_group_name", "log_stream_name", "aws_region", "aws_access_key_id",
    "aws_secret_access_key", "aws_session_token", "aws_profile", "endpoint_url",
    "create_log_group", "create_log_stream", "retention_in_days", "tags",
})
_GCP_KEYS = frozenset({"project", "log_name", "labels", "resource_type", "resource_labels",
                       "api_endpoint"})
_JSON_KEYS = frozenset({"stream", "format"})
_SECRET_KEYS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")
_SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")


class CliError(Exception):
    """A failure to report (exit status 1): one line, or, with ``details``, a headline and the
    lines below it in full (a Dagster error's every message), then ``fix``."""

    def __init__(self, message: str, details: Sequence[str] = (), fix: str | None = None) -> None:
        super().__init__(message)
        self.details = [str(d) for d in details]
        self.fix = fix

    def render(self, prefix: str) -> str:
        """The text printed on stderr: ``prefix`` + the message, details indented below."""
        if not self.details and self.fix is None:
            return f"{prefix}{one_line(str(self), 1000)}"
        lines = [f"{prefix}{str(self).rstrip()}"]
        for detail in self.details:
            lines.extend("    " + row for row in detail.rstrip().splitlines() if row.strip())
        if self.fix:
            lines.append(f"  fix: {self.fix}")
        return "\n".join(lines)


class UsageError(CliError):
    """The command line cannot be run as given (exit status 2, like argparse's own errors):
    unknown or conflicting flags, a missing or unreadable ``-c`` file, a bad value."""


class Output:
    """Prints lines with every known secret replaced by ``***``.

    Secrets are the credential values of the configs read and of the environment; error texts
    from Dagster, boto3 or Google can echo a value, so everything printed passes through here.
    """

    def __init__(self, stream: IO[str] | None = None, err: IO[str] | None = None) -> None:
        self.stream = stream or sys.stdout
        self.err = err or sys.stderr
        self._secrets: set[str] = set()
        for name in _SECRET_ENV:
            self.add_secret(os.environ.get(name))

    def add_secret(self, value: Any) -> None:
        if isinstance(value, str) and len(value) >= 4:
            self._secrets.add(value)

    def scrub(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text

    def line(self, text: str = "") -> None:
        self.stream.write(self.scrub(text) + "\n")
        self.stream.flush()

    def error(self, text: str) -> None:
        self.err.write(self.scrub(text) + "\n")
        self.err.flush()


def one_line(text: str, limit: int = 400) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- run config ----------------------------------------------------------------------------------


def load_run_config(path: str) -> dict[str, Any]:
    """A run config YAML file as a dict; ``UsageError`` naming the file when it is not one (an
    empty file is ``{}``, as ``dagster job execute -c`` reads it)."""
    import yaml

    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory, not a run config YAML file") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read it ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not a text file (a run config is YAML)") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: not valid YAML ({one_line(str(exc), 300)})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(
            f"{path}: a run config is a YAML mapping (with a `loggers:` section), "
            f"not a {type(data).__name__}"
        )
    return data


def deep_merge(onto: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """``new`` merged into a copy of ``onto``: mappings in both are merged, key by key, any
    other value of ``new`` replaces (lists too): how Dagster merges ``-c a.yaml -c b.yaml``."""
    merged = dict(onto)
    for key, value in new.items():
        old = merged.get(key)
        if isinstance(old, Mapping) and isinstance(value, Mapping):
            merged[key] = deep_merge(old, value)
        else:
            merged[key] = value
    return merged


def load_run_configs(paths: Sequence[str]) -> tuple[dict[str, Any], str]:
    """Several ``-c`` files merged in order (later wins), and how to name them in messages."""
    merged: dict[str, Any] = {}
    for path in paths:
        merged = deep_merge(merged, load_run_config(path))
    return merged, " + ".join(paths)


_DAGSTER_FIXES = {
    "DagsterInvalidConfigError": "correct the run config at the paths named above (each "
    "error names its path, root:loggers:KEY:config:...); `dagster-logship check CONFIG.yaml` "
    "checks each logger's part",
    "DagsterInvariantViolationError": "the code does not load in Dagster either: fix what the "
    "message names (`dagster definitions validate -f FILE` shows the same)",
    "DagsterInvalidDefinitionError": "the definitions are not valid in Dagster either: fix "
    "what the message names (`dagster definitions validate -f FILE` shows the same)",
}


def dagster_error(exc: BaseException, headline: str) -> CliError | None:
    """A Dagster error as a ``CliError`` showing it whole (every message, uncut) with the fix;
    None when ``exc`` is not one of Dagster's errors."""
    try:
        from dagster import DagsterError, DagsterInvalidConfigError
    except ImportError:  # pragma: no cover - dagster is a dependency
        return None
    if not isinstance(exc, DagsterError):
        return None
    name = type(exc).__name__
    text = str(exc).strip()
    first, _, rest = text.partition("\n")
    details: list[str] = []
    if isinstance(exc, DagsterInvalidConfigError) and exc.errors:
        details = [f"Error {i}: {error.message}" for i, error in enumerate(exc.errors, 1)]
    elif rest.strip():
        details = [rest]
    fix = next((f for cls, f in _DAGSTER_FIXES.items()
                if cls in {c.__name__ for c in type(exc).__mro__}), None)
    return CliError(f"{headline}: {name}: {first}", details,
                    fix or "see Dagster's message above")


def kind_of(key: str, config: Mapping[str, Any]) -> str | None:
    """Which of our loggers a ``loggers:`` entry configures, from its config keys (then its key)."""
    keys = set(config)
    if keys & _CW_KEYS:
        return "cloudwatch"
    if keys & _GCP_KEYS:
        return "gcp"
    if keys & _JSON_KEYS:
        return "json"
    lowered = key.lower()
    if "cloudwatch" in lowered or lowered in ("cw", "aws"):
        return "cloudwatch"
    if "gcp" in lowered or "google" in lowered or "stackdriver" in lowered:
        return "gcp"
    if "json" in lowered:
        return "json"
    return None


@dataclass
class Destination:
    """One logger's destination, its config processed as the logger would process it."""

    key: str
    kind: str
    config: dict[str, Any]
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def logger_name(self) -> str:
        return _LOGGER_NAMES[self.kind]

    def describe(self) -> str:
        c = self.config
        if self.kind == "cloudwatch":
            where = f"log group {c['log_group_name']}, stream {c['log_stream_name']}"
            region = c.get("aws_region") or os.environ.get("AWS_DEFAULT_REGION")
            where += f", region {region or '(none)'}"
            if c.get("endpoint_url"):
                where += f", endpoint {c['endpoint_url']}"
            return where
        if self.kind == "gcp":
            project = c.get("project") or "(project of the credentials)"
            where = f"projects/{project}/logs/{c['log_name']}"
            if c.get("api_endpoint"):
                where += f" at {c['api_endpoint']}"
            return where
        return f"JSON lines on {c.get('stream', 'stdout')} (format {c.get('format', 'json')})"

    def handler_kwargs(self) -> dict[str, Any]:
        """The processed config as handler keywords (the handler takes the config keys)."""
        return {k: v for k, v in self.config.items() if k not in ("log_level", "name")}


def _logger_def(kind: str) -> Any:
    if kind == "cloudwatch":
        from ..loggers.cloudwatch import cloudwatch_logger

        return cloudwatch_logger
    if kind == "gcp":
        from ..loggers.gcp import gcp_logger

        return gcp_logger
    from ..loggers.json_console import json_console_logger

    return json_console_logger


def process_logger_config(key: str, kind: str, raw: Any, out: Output) -> Destination:
    """Apply the logger's schema (defaults, ``{env: VAR}``); ``CliError`` listing what is wrong."""
    from dagster._config import process_config

    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise CliError(f"loggers.{key}.config: expected a mapping of config keys")
    for name in _SECRET_KEYS:
        out.add_secret(raw.get(name))
    config_type = _logger_def(kind).config_schema.config_type
    result = process_config(config_type, raw)
    if not result.success:
        errors = list(result.errors or ())
        raise CliError(
            f"loggers.{key}.config is not valid for {_LOGGER_NAMES[kind]} "
            f"({len(errors)} error(s), as Dagster reports them)",
            [f"Error {i}: {e.message}" for i, e in enumerate(errors, 1)],
            fix=f"correct loggers.{key}.config (the README's {_LOGGER_NAMES[kind]} section "
            "lists its keys and their types)",
        )
    value = dict(result.value or {})
    for name in _SECRET_KEYS:
        out.add_secret(value.get(name))
    return Destination(key=key, kind=kind, config=value, raw=dict(raw))


def logger_entries(
    run_config: Mapping[str, Any], path: str, logger_key: str | None, kind: str | None
) -> list[tuple[str, str | None, Any]]:
    """``(key, kind or None, raw config)`` for each entry under ``loggers:`` (or just
    ``logger_key``); the kind from ``kind``, else from the config keys."""
    loggers = run_config.get("loggers")
    if not isinstance(loggers, dict) or not loggers:
        raise CliError(
            f"{path}: no `loggers:` section. A logger only runs when its key is named under "
            "`loggers:` in the run config"
        )
    if logger_key is not None and logger_key not in loggers:
        raise CliError(
            f"{path}: no logger {logger_key!r} under `loggers:` (found: {', '.join(loggers)})"
        )
    entries: list[tuple[str, str | None, Any]] = []
    for key, entry in loggers.items():
        if logger_key is not None and key != logger_key:
            continue
        if entry is not None and not isinstance(entry, dict):
            raise CliError(f"{path}: loggers.{key} must be a mapping with a `config:` key")
        config = (entry or {}).get("config") or {}
        if not isinstance(config, dict):
            raise CliError(f"{path}: loggers.{key}.config must be a mapping")
        found = kind or kind_of(str(key), config)
        if found is None and logger_key is not None:
            raise CliError(
                f"{path}: cannot tell which logger {key!r} is from its config keys: "
                "add --kind cloudwatch|gcp|json"
            )
        entries.append((str(key), found, config))
    return entries


def single_destination(
    run_config: Mapping[str, Any], path: str, out: Output, logger_key: str | None,
    kind: str | None, allowed: Iterable[str],
) -> Destination:
    """Exactly one of our loggers of an ``allowed`` kind (``--logger`` picks among several)."""
    allowed = tuple(allowed)
    entries = [e for e in logger_entries(run_config, path, logger_key, kind) if e[1] in allowed]
    if not entries:
        raise CliError(
            f"{path}: no {' or '.join(_LOGGER_NAMES[k] for k in allowed)} under `loggers:`"
        )
    if len(entries) > 1:
        raise CliError(
            f"{path}: several loggers ({', '.join(e[0] for e in entries)}): pick one with --logger"
        )
    key, found, config = entries[0]
    assert found is not None
    return process_logger_config(key, found, config, out)


def destination_from_flags(kind: str, values: Mapping[str, Any], out: Output) -> Destination:
    """A destination from command-line flags, checked by the same schema as a run config."""
    raw = {k: v for k, v in values.items() if v is not None}
    return process_logger_config("(command line)", kind, raw, out)


# -- events --------------------------------------------------------------------------------------


def parse_timestamp(value: Any) -> float | None:
    """Seconds since the epoch of an RFC 3339 timestamp (ours end in Z), or None."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    # Python < 3.11 accepts only 0, 3 or 6 fraction digits.
    if "." in text:
        head, _, rest = text.partition(".")
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        text = f"{head}.{(digits + '000000')[:6]}{rest}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _clock(event: Mapping[str, Any], fallback_ms: int | None) -> str:
    seconds = parse_timestamp(event.get("timestamp"))
    if seconds is None and fallback_ms is not None:
        seconds = fallback_ms / 1000
    if seconds is None:
        return "-" * 23
    when = datetime.fromtimestamp(seconds, tz=timezone.utc)
    return when.strftime("%Y-%m-%d %H:%M:%S.") + f"{when.microsecond // 1000:03d}"


def format_event(event: Mapping[str, Any], fallback_ms: int | None = None) -> str:
    """One schema event as a readable line (and its traceback, indented, below it).

    ``time  LEVEL  run  step  EVENT_TYPE  message``: the run id's first 8 characters, ``-`` for
    the run level, no event type for user records.
    """
    level = str(event.get("level") or "-")
    run_id = str(event.get("run_id") or "-")[:8]
    step = str(event.get("step_key") or "-")
    kind = event.get("event_type")
    message = str(event.get("message") if event.get("message") is not None else "")
    part = event.get("part")
    if isinstance(part, dict) and part.get("count"):
        message += f" [part {part.get('index')}/{part.get('count')}]"
    head = f"{_clock(event, fallback_ms)} {level:<8} {run_id:<8} {step}"
    head += f" {kind}" if kind else ""
    lines = message.splitlines() or [""]
    text = f"{head}  {lines[0]}"
    for extra in lines[1:]:
        text += "\n    " + extra
    exception = event.get("exception")
    if isinstance(exception, dict):
        trace = exception.get("traceback")
        if isinstance(trace, str) and trace.strip():
            text += "".join("\n    " + row for row in trace.rstrip().splitlines())
        elif exception.get("type") or exception.get("message"):
            text += f"\n    {exception.get('type') or 'Error'}: {exception.get('message') or ''}"
    return text


def probe_item(sink: Any, message: str) -> Any:
    """One schema event made by a real ``LogRecord`` (as the handler makes them), ready to send."""
    from ..shipping.encoding import build_event, encode
    from ..shipping.snapshots import snapshot

    record = logging.LogRecord(
        "dagster_logship.check", logging.INFO, __file__, 0, message, None, None, "check"
    )
    record.logship_check = True
    event = build_event(snapshot(record))
    text, size = encode(event)
    return (text, sink.payload(text, event, ()), size, record.created, 0)


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, default=str)
