"""``gcp_logger``: Dagster records to Google Cloud Logging, configured from run config."""

from __future__ import annotations

import logging

from dagster import Field, InitLoggerContext, Map, Noneable, StringSource, logger

from ..handlers.gcp import GcpHandler
from ..sinks.gcp import GcpTarget
from ._config import build_logger, common_schema, shipping_kwargs, shipping_schema
from .announce import announce, gcp_console_url

__all__ = ["gcp_logger"]


def _labels_field(description: str) -> Field:
    kind = Noneable(Map(str, StringSource))  # type: ignore[no-untyped-call]
    return Field(kind, is_required=False, default_value=None, description=description)


@logger(
    config_schema={
        **common_schema(),
        "project": Field(
            Noneable(StringSource), is_required=False, default_value=None,
            description="Google Cloud project ID. Default: the project of the environment's "
            "credentials (resolved at the first send, not when the logger is built).",
        ),
        "log_name": Field(
            StringSource, is_required=False, default_value="dagster",
            description="Log ID: entries go to projects/{project}/logs/{log_name}.",
        ),
        "labels": _labels_field(
            "Labels added to every entry, besides run_id, job_name and step_key."
        ),
        "resource_type": Field(
            StringSource, is_required=False, default_value="global",
            description="Monitored resource type of the entries (global, k8s_container, ...).",
        ),
        "resource_labels": _labels_field("Labels of the monitored resource."),
        "api_endpoint": Field(
            Noneable(StringSource), is_required=False, default_value=None,
            description="Base URL of another Cloud Logging endpoint (a local fake server or an "
            "emulator); anonymous credentials are used with it.",
        ),
        **shipping_schema(),
    },
    description="Google Cloud Logging entries (entries.write), batched, never blocking the op.",
)
def gcp_logger(init_context: InitLoggerContext) -> logging.Logger:
    config = init_context.logger_config
    handler = GcpHandler(
        project=config["project"],
        log_name=config["log_name"],
        labels=config["labels"],
        resource_type=config["resource_type"],
        resource_labels=config["resource_labels"],
        api_endpoint=config["api_endpoint"],
        **shipping_kwargs(config),
    )
    _announce(handler.target)
    return build_logger(config["name"], config["log_level"], handler)


def _announce(target: GcpTarget) -> None:
    """Say once per process and log where the entries go (no network call: a project left to
    the credentials is only named as such)."""
    project = target.project or "(the project of the environment's credentials)"
    log = f"projects/{project}/logs/{target.log_name}"
    if target.api_endpoint:
        where_read = f"endpoint {target.api_endpoint} (not Google's own)"
    elif target.project:
        where_read = gcp_console_url(target.project, target.log_name)
    else:
        where_read = "the Logs Explorer of that project"
    announce(
        f"gcp {project} {target.log_name} {target.api_endpoint}",
        f"shipping Dagster logs to Cloud Logging {log}: {where_read}",
    )
