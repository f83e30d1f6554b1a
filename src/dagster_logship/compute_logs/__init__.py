"""Compute log managers: steps' stdout/stderr and sensors' and schedules' logs, shipped as they
are written to CloudWatch Logs or Cloud Logging, and read back from there by the Dagster UI."""

from .cloudwatch import CloudWatchComputeLogManager
from .gcp import GcpComputeLogManager
from .manager import ShippingComputeLogManager

__all__ = ["CloudWatchComputeLogManager", "GcpComputeLogManager", "ShippingComputeLogManager"]
