"""Every hook combination end to end: own environment, own tests, wheel, and a registry submission.

For each of the 15 combinations the baked project gets one uv virtual environment holding the
repository's SDK, the project and pytest; its own tests (the conformance kit among them) run there;
``uv build --wheel`` makes the artifact; and an in-process registry on a freshly migrated SQLite
database accepts it into review with every automated check passed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fulcrum_core.data.db import Database
from fulcrum_registry import RegistryService
from sqlalchemy.orm import sessionmaker

ROOT = Path(__file__).resolve().parents[2]
UV = shutil.which("uv")
CONFORMANCE_TEST = "tests/test_conformance.py::test_the_plugin_passes_the_conformance_kit"
ENTRY_POINT_TEST = "tests/test_package.py::test_entry_point_loads_the_plugin_module"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(UV is None, reason="uv is not on PATH; it makes each baked project's own environment"),
]


def _run(*cmd: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a fixed command (uv or the venv's interpreter) outside this test run's environment."""
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH"}}
    env.update(UV_NO_PROGRESS="1", PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False)


def _venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[RegistryService]:
    """A registry over a temporary SQLite platform database migrated to head, disposed afterwards."""
    database = Database(f"sqlite:///{(tmp_path / 'registry.db').as_posix()}")
    database.upgrade()
    try:
        yield RegistryService(
            sessionmaker(bind=database.engine, expire_on_commit=False),
            tmp_path / "artifacts",
            read_session_factory=sessionmaker(bind=database.reader, expire_on_commit=False),
        )
    finally:
        database.dispose()


def _own_tests_pass(baked: Any, work: Path) -> str:
    """Make the project's own environment, run its tests there verbosely; returns pytest's output."""
    assert UV is not None
    venv = work / "venv"
    created = _run(UV, "venv", "--quiet", str(venv), cwd=work)
    assert created.returncode == 0, created.stderr
    python = str(_venv_python(venv))
    installed = _run(
        UV, "pip", "install", "--quiet", "-p", python, str(ROOT / "sdk"), str(baked.path), "pytest", cwd=work
    )
    assert installed.returncode == 0, installed.stderr
    tests = _run(python, "-m", "pytest", "-v", "-p", "no:cacheprovider", cwd=baked.path)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    return tests.stdout


def _build_wheel(baked: Any, work: Path) -> Path:
    """``uv build --wheel`` as the README tells the publisher; returns the one wheel it made."""
    assert UV is not None
    dist = work / "dist"
    built = _run(UV, "build", "--wheel", "--out-dir", str(dist), str(baked.path), cwd=work)
    assert built.returncode == 0, built.stderr
    (wheel,) = dist.glob("*.whl")
    assert wheel.name == f"{baked.package}-0.1.0-py3-none-any.whl"
    return wheel


def test_each_combination_tests_builds_and_passes_the_registry_checks(
    baked: Any, tmp_path: Path, registry: RegistryService
) -> None:
    """Own env: tests and conformance kit pass; the wheel reaches in_review; no other publisher files it."""
    output = _own_tests_pass(baked, tmp_path)
    assert re.search(rf"^{re.escape(CONFORMANCE_TEST)} PASSED", output, flags=re.MULTILINE), output
    assert re.search(rf"^{re.escape(ENTRY_POINT_TEST)} PASSED", output, flags=re.MULTILINE), output
    summary = output.strip().splitlines()[-1]
    assert re.fullmatch(r"=+ \d+ passed in [0-9.]+s(?: \([0-9:]+\))? =+", summary), summary

    wheel = _build_wheel(baked, tmp_path)
    publisher_id, kind = baked.context["publisher_id"], baked.context["publisher_kind"]
    other_kind = next(k for k in ("partner", "department", "branch") if k != kind)
    for pid, pkind in ((publisher_id, kind), ("someone-else", other_kind)):
        new = {"id": pid, "name": "模板测试发布方", "kind": pkind, "contact": "plugins@example.com"}
        registry.create_publisher(new, actor="tests")
    # Another publisher cannot file the wheel in its own name, nor claim the plugin id by trying.
    impostor = registry.submit(
        wheel.read_bytes(), filename=wheel.name, publisher_id="someone-else", submitted_by="tests"
    )
    assert (impostor.state, impostor.failed_checks) == ("checks_failed", ("publisher.owns_plugin",))
    assert impostor.plugin_id is None
    release = registry.submit(
        wheel.read_bytes(), filename=wheel.name, publisher_id=publisher_id, submitted_by="tests"
    )
    checks = {c.id: c.status for c in release.checks}
    assert release.failed_checks == (), checks
    assert checks
    assert "failed" not in checks.values()
    assert release.state == "in_review"
    assert (release.plugin_id, release.version) == (baked.plugin_id, "0.1.0")
    assert release.manifest is not None
    assert release.manifest.kind == kind
