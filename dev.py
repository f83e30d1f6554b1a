#!/usr/bin/env python3
"""Set up a virtual environment and run the demo or the checks.

    python3 dev.py demo    # the CloudWatch demo against an embedded moto server
    python3 dev.py test    # ruff, mypy and every test

Only needs Python >= 3.10 with pip and venv: everything else is installed into ``.venv``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("LOGSHIP_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
STAMP = VENV / ".logship-installed"


def run(*args: str | Path) -> None:
    print("+", " ".join(str(a) for a in args), flush=True)
    code = subprocess.call([str(a) for a in args], cwd=ROOT)
    if code:
        sys.exit(code)


def setup() -> None:
    """Create .venv and install the package with its dev extras (again when pyproject changes)."""
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted and PY.exists():
        return
    if not PY.exists():
        print(f"+ creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    run(PY, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    run(PY, "-m", "pip", "install", "--quiet", "-e", ".[dev]")
    STAMP.write_text(wanted)


def demo() -> None:
    setup()
    run(PY, "examples/cloudwatch_demo.py")


def test() -> None:
    setup()
    run(
        BIN / "ruff",
        "check",
        "src",
        "tests",
        "integration_tests",
        "examples",
        "benchmarks",
        "dev.py",
    )
    run(BIN / "mypy")
    run(BIN / "lint-imports")  # the layers' import contracts, in pyproject.toml
    run(PY, "-m", "pytest", "-p", "no:cacheprovider", *sys.argv[2:])


def main() -> None:
    commands = {"demo": demo, "test": test, "setup": setup}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        print(__doc__)
        sys.exit(2)
    commands[sys.argv[1]]()


if __name__ == "__main__":
    main()
