"""Publishing real wheels built with ``uv build``: the pension plugin and a tiny project made here."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from fulcrum_registry import REVIEW_CHECKLIST, RegistryService

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
UV = shutil.which("uv")


def uv_build(project: Path, out: Path) -> Path:
    """Build ``project``'s wheel into ``out`` with uv and return its path."""
    if UV is None:
        pytest.skip("uv is not on PATH")
    subprocess.run(
        [UV, "build", str(project), "--wheel", "--out-dir", str(out), "--quiet"],
        check=True,
        capture_output=True,
    )
    (wheel,) = out.glob("*.whl")
    return wheel


def test_the_pension_plugin_publishes_and_needs_two_approvers(
    registry: RegistryService, tmp_path: Path
) -> None:
    """plugins/pension, built by uv, passes every check; its high-sensitivity scopes need two approvers."""
    project = ROOT / "plugins" / "pension"
    if not (project / "pyproject.toml").is_file():
        pytest.skip("plugins/pension is not in this tree")
    wheel = uv_build(project, tmp_path / "dist")
    release = registry.submit(
        wheel.read_bytes(), filename=wheel.name, publisher_id="pension-dept", submitted_by="alice"
    )
    assert release.failed_checks == ()
    assert release.state == "in_review"
    assert release.plugin_id == "pension"
    assert release.approvals_needed == 2
    checklist = dict.fromkeys(REVIEW_CHECKLIST, True)
    registry.approve(release.id, reviewer="bob", checklist=checklist, grant=[*release.requested.required])
    approved = registry.approve(release.id, reviewer="carol", checklist=checklist)
    assert approved.state == "approved"
    granted = registry.active_policy()["pension"][release.version].granted_scopes
    assert granted == set(release.requested.required)  # bob withheld the optional profile:basic


PYPROJECT = """\
[project]
name = "fulcrum-tiny"
version = "{version}"
requires-python = ">=3.11"

[project.entry-points.fulcrum]
tiny = "fulcrum_tiny"

[build-system]
requires = ["uv_build>=0.9,<0.14"]
build-backend = "uv_build"
"""

MANIFEST = """\
id = "tiny"
publisher = "branch-0755"
kind = "branch"
sdk = ">=0.1,<1"
hooks = ["home_slot_offers"]
slots = ["home.notice/v1"]

[name]
"zh-CN" = "小插件"

[description]
"zh-CN" = "深圳分行的测试插件"

[scopes.required]
"slot:home.notice" = "show one notice"
{extra}
[owner]
name = "深圳分行"
email = "digital@sz.example"
"""


def tiny_project(root: Path, version: str, extra: str = "") -> Path:
    """Write a minimal plugin project (pyproject, package, manifest) and return its directory."""
    package = root / "src" / "fulcrum_tiny"
    package.mkdir(parents=True)
    (root / "pyproject.toml").write_text(PYPROJECT.format(version=version))
    (package / "__init__.py").write_text('"""A tiny plugin."""\n')
    (package / "fulcrum-plugin.toml").write_text(MANIFEST.format(extra=extra), encoding="utf-8")
    return root


def test_a_tiny_project_built_by_uv_and_its_upgrade_diff(registry: RegistryService, tmp_path: Path) -> None:
    """A branch's own project builds, passes, is approved; its next version's diff shows the new scope."""
    checklist = dict.fromkeys(REVIEW_CHECKLIST, True)
    first = uv_build(tiny_project(tmp_path / "v1", "0.1.0"), tmp_path / "d1")
    one = registry.submit(
        first.read_bytes(), filename=first.name, publisher_id="branch-0755", submitted_by="li"
    )
    assert one.failed_checks == ()
    registry.approve(one.id, reviewer="wang", checklist=checklist)
    extra = '"location:city" = "show deals in your city"\n'
    second = uv_build(tiny_project(tmp_path / "v2", "0.2.0", extra), tmp_path / "d2")
    two = registry.submit(
        second.read_bytes(), filename=second.name, publisher_id="branch-0755", submitted_by="li"
    )
    assert two.state == "in_review"
    diff = registry.diff(two.id)
    assert diff.baseline_version == "0.1.0"
    assert diff.added_scopes == ("location:city",)
