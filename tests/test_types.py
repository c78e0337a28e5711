"""The package's annotations are its public types (``compress/py.typed``): mypy, with pyproject's ``[tool.mypy]``
settings, finds no error in ``compress`` and in ``tests/typing/public_api.py`` (the entry points called as a user
calls them, with ``assert_type`` on what they return). About 20 s from a cold cache (a fresh clone), 2-4 s warm."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mypy", reason="mypy is in the dev extra: pip install -e '.[dev]'")

ROOT = Path(__file__).resolve().parents[1]


def _mypy(*args: str) -> tuple[str, int]:
    """``mypy ARGS`` in the repository root (its pyproject settings and cache). A process of its own: run inside
    the test process (torch loaded) the same cold check took 50 s instead of 18 s."""
    done = subprocess.run([sys.executable, "-m", "mypy", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    return done.stdout + done.stderr, done.returncode


def _errors(report: str) -> list[str]:
    return [line for line in report.splitlines() if ": error:" in line]


def test_package_and_public_api_type_check():
    report, status = _mypy()
    errors = _errors(report)
    assert status == 0 and not errors, (f"mypy found {len(errors)} errors (run `mypy` in the repository root):\n"
                                        + "\n".join(errors or [report]))

