"""The Cloud Logging demo runs end to end: fake server in process, job from YAML, table printed."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

DEMO = Path(__file__).resolve().parents[2] / "examples" / "gcp_demo.py"


def load_demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dagster_logship_gcp_demo", DEMO)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_prints_what_arrived(capsys: pytest.CaptureFixture[str]) -> None:
    outcome = load_demo().main()
    out = capsys.readouterr().out
    assert outcome["success"]
    assert outcome["user"] == 4  # fetched, warning, debug, published
    assert outcome["entries"] > outcome["user"]  # Dagster's own events at DEBUG too
    assert outcome["unique_insert_ids"] == outcome["entries"]  # the retries duplicated nothing
    assert outcome["statuses"][:2] == [429, 503] and outcome["statuses"][-1] == 200
    assert "projects/demo-project/logs/dagster-demo" in out
    for text in ("fetched 4 orders", "2 large orders need a review", "published total 547",
                 "STEP_SUCCESS", "RUN_SUCCESS", "WARNING"):
        assert text in out
