"""Building demo wheels: find the source tree, build once per content, say clearly when it cannot."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fulcrum_core.registry_host import wheels
from fulcrum_core.registry_host.wheels import WheelBuildError, build_wheel, source_tree

needs_uv = pytest.mark.skipif(shutil.which("uv") is None, reason="building wheels needs uv")

PYPROJECT = """\
[project]
name = "fulcrum-tiny"
version = "{version}"
requires-python = ">=3.11"

[build-system]
requires = ["uv_build>=0.9,<0.14"]
build-backend = "uv_build"
"""


def _project(root: Path, version: str = "1.0.0") -> Path:
    (root / "src" / "fulcrum_tiny").mkdir(parents=True)
    (root / "src" / "fulcrum_tiny" / "__init__.py").write_text('"""Tiny."""\n')
    (root / "pyproject.toml").write_text(PYPROJECT.format(version=version))
    return root


def test_source_tree_of_installed_and_unknown_distributions() -> None:
    """An editable install points at its project; an unknown distribution has no source tree."""
    found = source_tree("fulcrum-pension")
    if found is None:
        pytest.skip("fulcrum-pension is not installed from a source tree here")
    assert (found / "pyproject.toml").is_file()
    assert source_tree("no-such-distribution-anywhere") is None


@needs_uv
def test_a_wheel_is_built_once_per_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same sources give the cached wheel without running uv again; changed sources build anew."""
    project = _project(tmp_path / "tiny")
    name, data = build_wheel(project, tmp_path / "cache")
    assert name == "fulcrum_tiny-1.0.0-py3-none-any.whl"
    assert data[:2] == b"PK"
    monkeypatch.setattr(wheels.shutil, "which", lambda _: None)  # uv "disappears": only the cache can answer
    assert build_wheel(project, tmp_path / "cache") == (name, data)
    (project / "pyproject.toml").write_text(PYPROJECT.format(version="1.0.1"))
    with pytest.raises(WheelBuildError, match="uv command is not on PATH"):
        build_wheel(project, tmp_path / "cache")


@needs_uv
def test_a_broken_project_names_the_failure(tmp_path: Path) -> None:
    """A project uv cannot build raises WheelBuildError naming it and carrying uv's complaint."""
    project = _project(tmp_path / "broken")
    (project / "pyproject.toml").write_text("[project\nname = ")
    with pytest.raises(WheelBuildError, match="uv build broken failed"):
        build_wheel(project, tmp_path / "cache")
