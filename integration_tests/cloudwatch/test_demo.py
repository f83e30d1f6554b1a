"""The CloudWatch demo runs end to end: embedded moto server, prod job from YAML, table printed."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

DEMO = Path(__file__).resolve().parents[2] / "examples" / "cloudwatch_demo.py"


def load_demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dagster_logship_cloudwatch_demo", DEMO)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_prod_variant_prints_what_arrived(capsys: pytest.CaptureFixture[str]) -> None:
    outcome = load_demo().main([])
    out = capsys.readouterr().out

    assert outcome["success"]
    assert outcome["user"] == 4  # fetch, warning, debug, publish
    assert outcome["events"] > outcome["user"]  # Dagster's own events at DEBUG too
    assert "time" in out and "event_type" in out and "step_key" in out
    for line in ("fetched 4 orders", "2 large orders need a review", "published total 547",
                 "STEP_SUCCESS", "RUN_SUCCESS"):
        assert line in out
    assert f"{outcome['events']} events: 4 user records" in out


def test_demo_dev_variant_uses_the_console() -> None:
    assert load_demo().main(["dev"])["success"]
