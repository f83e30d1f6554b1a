#!/usr/bin/env python3
"""Benchmarks side by side with what a Dagster user would otherwise pick: one command.

    python3 benchmarks/run.py          # full run (~20 min on 2 cores) -> benchmarks/results/
    python3 benchmarks/run.py --quick  # small N, < 1 min after setup -> benchmarks/.quick-results/
    python3 benchmarks/run.py --only caller,throughput   # a subset of the sections

Needs only Python >= 3.10 with pip and venv. Creates ``benchmarks/.venv`` (gitignored) with this
project installed editable (``pip install -e ".[dev]"``) plus the libraries it is compared with
(watchtower, dagster-aws) and matplotlib/psutil for the report, then runs ``harness.py`` in it.
Everything runs on loopback: a PutLogEvents stub, the fake Cloud Logging server and a moto server.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENV = Path(os.environ.get("LOGSHIP_BENCH_VENV", HERE / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
STAMP = VENV / ".logship-bench-installed"
#: What the project is compared with, and what the report needs.
EXTRA = ["watchtower>=3.3", "dagster-aws", "matplotlib>=3.7", "psutil>=5.9"]


def _run(*args: str | Path) -> None:
    print("+", " ".join(str(a) for a in args), flush=True)
    code = subprocess.call([str(a) for a in args], cwd=ROOT)
    if code:
        sys.exit(code)


def setup() -> None:
    """Create the venv and install (again when pyproject.toml or this list changes)."""
    wanted = hashlib.sha256(
        (ROOT / "pyproject.toml").read_bytes() + repr(EXTRA).encode()
    ).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted and PY.exists():
        return
    if not PY.exists():
        print(f"+ creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    _run(PY, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    # One resolver run, so dagster-aws is the release matching the dagster that .[dev] brings.
    _run(PY, "-m", "pip", "install", "--quiet", "-e", ".[dev]", *EXTRA)
    STAMP.write_text(wanted)


def main() -> None:
    setup()
    if "--setup-only" in sys.argv[1:]:
        return
    code = subprocess.call([str(PY), str(HERE / "harness.py"), *sys.argv[1:]], cwd=ROOT)
    sys.exit(code)


if __name__ == "__main__":
    main()
