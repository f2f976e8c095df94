"""Baked projects in their own environments: their own tests pass and their wheel carries the manifest.

Each test creates a virtual environment with uv, installs the repository's SDK, the baked project
and pytest into it, runs the project's tests there, and builds the wheel the publisher would submit.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fulcrum_registry.checks import CheckContext, check_wheel
from fulcrum_sdk.manifest import manifest_from_wheel, semantic_problems

_OUTER_ENV = {"VIRTUAL_ENV", "PYTHONPATH", "UV_PROJECT_ENVIRONMENT"}
"""This checkout's environment, which a partner's fresh shell would not have."""

ROOT = Path(__file__).resolve().parents[2]
UV = shutil.which("uv")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(UV is None, reason="uv is not on PATH; it makes the baked project's own environment"),
]

REPRESENTATIVE = [
    pytest.param(
        {"plugin_name": "城市优惠", "plugin_name_en": "City Coupons", "publisher_id": "meituan-local",
         "publisher_kind": "partner"},
        id="every-hook-partner",
    ),
    pytest.param(
        {"plugin_name": "外汇提醒", "plugin_name_en": "FX Alerts", "publisher_kind": "department",
         "home_slots": False, "search": False, "feed": False},
        id="transactions-only-department",
    ),
    pytest.param(
        {"plugin_name": "深圳社保", "plugin_name_en": "", "plugin_id": "sz-social-security",
         "publisher_id": "branch-0755", "publisher_kind": "branch",
         "transactions": False, "home_slots": False},
        id="search-feed-branch-no-english",
    ),
]


def _run(*cmd: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in _OUTER_ENV}
    env["UV_NO_PROGRESS"] = "1"
    # The commands are fixed here: uv, this interpreter, or the venv's interpreter.
    return subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )


def _venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


@pytest.mark.parametrize("answers", REPRESENTATIVE)
def test_the_baked_projects_own_tests_pass_in_its_own_environment(
    bake: Any, tmp_path: Path, answers: dict[str, Any]
) -> None:
    """uv venv + the local SDK + the project + pytest: the project's tests, entry point included, all pass."""
    assert UV is not None
    result = bake(**answers)
    assert result.exit_code == 0, result.exception
    project: Path = result.project_path
    venv = tmp_path / "venv"
    created = _run(UV, "venv", "--quiet", str(venv), cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    python = str(_venv_python(venv))
    installed = _run(UV, "pip", "install", "--quiet", "-p", python, str(ROOT / "sdk"), str(project), "pytest",
                     cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr
    tests = _run(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=project)
    summary = tests.stdout.strip().splitlines()[-1] if tests.stdout.strip() else ""
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert re.fullmatch(r"\d+ passed in [0-9.]+s", summary), summary
    collected = _run(python, "-m", "pytest", "--collect-only", "-q", cwd=project).stdout
    assert "tests/test_package.py::test_entry_point_loads_the_plugin_module" in collected
    assert "tests/test_conformance.py::test_the_plugin_passes_the_conformance_kit" in collected


@pytest.mark.parametrize("answers", REPRESENTATIVE)
def test_the_built_wheel_carries_a_valid_manifest(bake: Any, tmp_path: Path, answers: dict[str, Any]) -> None:
    """uv build makes the wheel to submit: its manifest reads back, and the registry's checks all pass."""
    assert UV is not None
    result = bake(**answers)
    assert result.exit_code == 0, result.exception
    built = _run(UV, "build", "--wheel", "--out-dir", str(tmp_path / "dist"), str(result.project_path),
                 cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    package = result.context["__package"]
    wheel = tmp_path / "dist" / f"{package}-0.1.0-py3-none-any.whl"
    manifest = manifest_from_wheel(wheel)
    assert (manifest.id, manifest.version) == (result.context["plugin_id"], "0.1.0")
    assert manifest.kind == answers["publisher_kind"]
    assert semantic_problems(manifest) == []
    # An empty registry: no other plugin holds a transaction type yet.
    publisher = CheckContext(publisher_id=manifest.publisher, publisher_kind=manifest.kind, type_owners={})
    outcomes = {r.id: (r.status, r.details) for r in check_wheel(wheel, publisher)}
    assert outcomes
    assert {status for status, _ in outcomes.values()} == {"passed"}, outcomes


def test_the_baked_code_type_checks_strictly(bake: Any) -> None:
    """With every hook chosen, the package and its tests pass mypy --strict against the SDK's types."""
    result = bake()
    assert result.exit_code == 0, result.exception
    checked = _run(
        sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--python-version", "3.11",
        "src", "tests",
        cwd=result.project_path,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_baked_project_works_as_a_uv_workspace_member(bake: Any, tmp_path: Path) -> None:
    """Baked under plugins/ of a workspace shaped like this repository, it resolves the workspace's SDK."""
    assert UV is not None
    workspace = tmp_path / "workspace"
    skip = shutil.ignore_patterns("__pycache__", ".venv", "dist")
    shutil.copytree(ROOT / "sdk", workspace / "sdk", ignore=skip)
    (workspace / "pyproject.toml").write_text(
        '[project]\nname = "workspace"\nversion = "0"\nrequires-python = ">=3.11"\n\n'
        "[tool.uv]\npackage = false\n\n"
        '[tool.uv.workspace]\nmembers = ["sdk", "plugins/*"]\n\n'
        "[tool.uv.sources]\nfulcrum-sdk = { workspace = true }\n",
        encoding="utf-8",
    )
    result = bake(plugin_name_en="Member Plugin")
    assert result.exit_code == 0, result.exception
    member = shutil.copytree(result.project_path, workspace / "plugins" / result.project_path.name)
    synced = _run(UV, "sync", "--quiet", "--all-packages", cwd=workspace)
    assert synced.returncode == 0, synced.stderr
    tests = _run(UV, "run", "--all-packages", "pytest", "-q", "-p", "no:cacheprovider", str(member),
                 cwd=workspace)
    assert tests.returncode == 0, tests.stdout + tests.stderr


def _fenced(markdown: str, language: str) -> list[str]:
    """The bodies of the README's fenced code blocks in ``language``."""
    return re.findall(rf"^```{language}\n(.*?)^```", markdown, flags=re.MULTILINE | re.DOTALL)


def test_the_readmes_uv_commands_and_example_run_as_written(bake: Any, tmp_path: Path) -> None:
    """Every uv command in the baked README and its Python example run, with ``$FULCRUM`` this checkout;
    then the SDK source it suggests makes plain ``uv sync`` and ``uv run`` work too."""
    assert UV is not None
    result = bake()
    assert result.exit_code == 0, result.exception
    project: Path = result.project_path
    readme = (project / "README.md").read_text(encoding="utf-8")
    commands = [
        shlex.split(line.split("  #")[0].replace("$FULCRUM", ROOT.as_posix()))
        for block in _fenced(readme, "sh")
        for line in block.splitlines()
        # The host's commands (check, dev, submit) run in the checkout; tests/core runs those.
        if line.startswith("uv ") and " fulcrum " not in line
    ]
    assert [" ".join(c[:2]) for c in commands] == ["uv venv", "uv pip", "uv run", "uv build", "uv run"]
    for command in commands:
        ran = _run(UV, *command[1:], cwd=project)
        assert ran.returncode == 0, (command, ran.stdout, ran.stderr)
    (source,) = [block for block in _fenced(readme, "toml") if "[tool.uv.sources]" in block]
    with (project / "pyproject.toml").open("a", encoding="utf-8") as pyproject:
        pyproject.write("\n" + source.replace("../fulcrum/sdk", (ROOT / "sdk").as_posix()))
    synced = _run(UV, "sync", "--quiet", cwd=project)
    assert synced.returncode == 0, synced.stderr
    (example,) = _fenced(readme, "python")
    (tmp_path / "example.py").write_text(example, encoding="utf-8")
    ran = _run(UV, "run", "python", str(tmp_path / "example.py"), cwd=project)
    assert ran.returncode == 0, ran.stdout + ran.stderr


def test_a_misnamed_entry_point_fails_the_projects_test_saying_what_to_write(
    bake: Any, tmp_path: Path
) -> None:
    """An entry point ``city_coupons`` (not the id) fails with the line to write, not an unpacking error."""
    assert UV is not None
    result = bake(plugin_name="城市优惠", plugin_name_en="City Coupons", publisher_id="city-coupons",
                  publisher_kind="partner")
    assert result.exit_code == 0, result.exception
    project: Path = result.project_path
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    assert '"city-coupons" = "fulcrum_city_coupons"' in text
    pyproject.write_text(text.replace('"city-coupons" = ', "city_coupons = "), encoding="utf-8")
    venv = tmp_path / "venv"
    assert _run(UV, "venv", "--quiet", str(venv), cwd=tmp_path).returncode == 0
    python = str(_venv_python(venv))
    installed = _run(UV, "pip", "install", "--quiet", "-p", python, str(ROOT / "sdk"), str(project), "pytest",
                     cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr
    tests = _run(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_package.py", cwd=project)
    assert tests.returncode == 1, tests.stdout
    assert "1 failed" in tests.stdout
    assert '`"city-coupons" = "fulcrum_city_coupons"` under [project.entry-points.fulcrum]' in tests.stdout
    assert "installed: ['city_coupons = fulcrum_city_coupons']" in tests.stdout
