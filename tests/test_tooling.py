"""The static checks are part of the test command: ruff, mypy strict, and the import-linter contracts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)


@pytest.mark.slow
def test_ruff_finds_nothing() -> None:
    """Every Python file in the repository passes the ruff rule set in pyproject.toml."""
    result = _run(sys.executable, "-m", "ruff", "check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_mypy_strict_passes() -> None:
    """fulcrum_sdk and fulcrum_core type-check under mypy --strict."""
    result = _run(sys.executable, "-m", "mypy", "--no-incremental")
    assert result.returncode == 0, result.stdout + result.stderr


def test_bench_scripts_type_check() -> None:
    """The benchmarks (scripts, outside the packages above) type-check under mypy --strict too."""
    scripts = sorted(str(path) for path in (ROOT / "bench").glob("*.py"))
    result = _run(sys.executable, "-m", "mypy", "--strict", "--no-incremental", *scripts)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_import_contracts_hold() -> None:
    """Dependency direction: plugins → sdk, registry → sdk, core → registry + sdk; nothing else."""
    result = _run(str(BIN / "lint-imports"), "--no-cache")
    assert result.returncode == 0, result.stdout + result.stderr
