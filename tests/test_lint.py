"""ruff and mypy are part of the test command: a lint or type error fails CI like a test.

Both use their configuration in pyproject.toml (mypy strict over the product and tests/;
tests/clients/ and bench/ are linted by ruff only)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)


def test_ruff() -> None:
    result = _run("ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy() -> None:
    result = _run("mypy", ".")
    assert result.returncode == 0, result.stdout + result.stderr
