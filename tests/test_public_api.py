"""The package's public surface, and that it stays light: cloud SDKs load only when used."""

from __future__ import annotations

import subprocess
import sys

import dagster_logship


def test_public_api_is_listed_and_importable():
    assert set(dagster_logship.__all__) >= {
        "cloudwatch_logger",
        "gcp_logger",
        "json_console_logger",
        "CloudWatchHandler",
        "GcpHandler",
        "JsonStreamHandler",
    }
    for name in dagster_logship.__all__:
        assert getattr(dagster_logship, name) is not None


def test_importing_the_package_loads_no_cloud_sdk():
    code = (
        "import sys, dagster_logship, dagster_logship.testing\n"
        "heavy = [m for m in ('boto3', 'botocore', 'moto', 'google.cloud.logging') "
        "if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_shipping_core_imports_neither_dagster_nor_a_cloud_sdk():
    code = (
        "import sys, dagster_logship.shipping\n"
        "print(','.join(m for m in ('dagster', 'boto3', 'google') if m in sys.modules))"
    )
    # the package __init__ imports dagster for the loggers, so load the core on its own
    code = (
        "import importlib.util, sys, types\n"
        "spec = importlib.util.find_spec('dagster_logship')\n"
        "pkg = types.ModuleType('dagster_logship')\n"
        "pkg.__path__ = spec.submodule_search_locations\n"
        "sys.modules['dagster_logship'] = pkg\n" + code
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
