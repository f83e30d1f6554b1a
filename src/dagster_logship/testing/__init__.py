"""What users need to test their own jobs offline: moto helpers and a fake Cloud Logging server."""

from .aws import (
    TEST_CREDENTIALS,
    flush_cloudwatch,
    mock_cloudwatch,
    moto_server,
    read_events,
    read_raw_events,
    reset_moto_server,
)
from .gcp_server import FakeCloudLogging, RemoteFakeCloudLogging, flush_gcp

__all__: list[str] = []
__all__ += ["FakeCloudLogging", "RemoteFakeCloudLogging", "flush_gcp"]
__all__ += [
    "TEST_CREDENTIALS",
    "flush_cloudwatch",
    "mock_cloudwatch",
    "moto_server",
    "read_events",
    "read_raw_events",
    "reset_moto_server",
]
