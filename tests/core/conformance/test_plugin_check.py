"""``fulcrum plugin check``: builds the wheel, runs the registry checks and the hook checks; 1 on failure."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from fulcrum_core.cli import main
from fulcrum_core.conformance import KitError, render_text, run_kit

ROOT = Path(__file__).resolve().parents[3]
# Tests expecting a pass use deadlines no busy machine misses (deadline misses are tested in process).
RELAXED = {"home_slot_offers": 10_000, "search": 10_000, "feed_items": 10_000, "execute_transaction": 10_000}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("uv") is None, reason="uv is not on PATH; the kit builds wheels with it"),
]

MANIFEST = """\
id = "kit-probe"
publisher = "test-bank"
kind = "department"
placement = "in_process"
sdk = ">=0.1,<1"
hooks = ["home_slot_offers"]
slots = ["home.banner/v1"]

[name]
"zh-CN" = "探针"

[description]
"zh-CN" = "一致性测试插件"

[scopes.required]
"slot:home.banner" = "在首页轮播展示 / shows a banner"

[owner]
name = "Test"
email = "test@example.com"
"""

GOOD_HOME = """\
from fulcrum_sdk import Action, LocalizedText, SlotOffer, hookimpl


@hookimpl
def home_slot_offers(ctx):
    return [SlotOffer(slot="home.banner/v1", key="b", title=LocalizedText(zh_CN="探针"),
                      action=Action(uri="fulcrum://probe"))]
"""


@pytest.fixture
def relaxed_config(tmp_path: Path) -> dict[str, str]:
    """Environment for CliRunner: a settings file with the relaxed deadlines."""
    config = tmp_path / "fulcrum.toml"
    config.write_text("[deadlines]\n" + "".join(f"{k} = {v}\n" for k, v in RELAXED.items()), encoding="utf-8")
    return {"FULCRUM_CONFIG": str(config)}


def write_project(root: Path, *, init: str = GOOD_HOME, manifest: str = MANIFEST) -> Path:
    """A minimal plugin project ``fulcrum-kit-probe`` with the given package code and manifest."""
    (root / "src" / "fulcrum_kit_probe").mkdir(parents=True)
    (root / "pyproject.toml").write_text(
        textwrap.dedent("""\
        [project]
        name = "fulcrum-kit-probe"
        version = "0.1.0"
        requires-python = ">=3.11"
        dependencies = ["fulcrum-sdk>=0.2,<0.3"]

        [project.entry-points.fulcrum]
        "kit-probe" = "fulcrum_kit_probe"

        [build-system]
        requires = ["uv_build>=0.9,<0.14"]
        build-backend = "uv_build"
        """),
        encoding="utf-8",
    )
    (root / "src" / "fulcrum_kit_probe" / "__init__.py").write_text(init, encoding="utf-8")
    (root / "src" / "fulcrum_kit_probe" / "fulcrum-plugin.toml").write_text(manifest, encoding="utf-8")
    return root


@pytest.mark.parametrize("name", ["pension", "wealth_checkup", "merchant_promo"])
def test_the_first_party_plugins_pass_the_kit(name: str) -> None:
    """Each plugin in plugins/ passes every registry check and every hook check from its own wheel."""
    report = run_kit(ROOT / "plugins" / name, deadlines=RELAXED)
    failed = [c for c in report.checks if c.status == "failed"]
    assert report.passed, render_text(report)
    assert not failed
    statuses = {c.id: c.status for c in report.checks}
    assert statuses["plugin.loads"] == "passed"
    assert statuses["hook.home_slot_offers"] == "passed"
    assert statuses["entry_point.matches_id"] == "passed"
    assert statuses["project.matches_id"] == "passed"


def test_a_conforming_project_exits_zero_with_pass_lines(
    tmp_path: Path, relaxed_config: dict[str, str]
) -> None:
    """A minimal good project passes: exit 0, a PASS line per check and the submit hint."""
    project = write_project(tmp_path / "probe")
    ran = CliRunner().invoke(main, ["plugin", "check", str(project)], env=relaxed_config)
    assert ran.exit_code == 0, ran.output
    assert "PASS  wheel.well_formed" in ran.output
    assert "PASS  hook.home_slot_offers" in ran.output
    assert "fulcrum registry submit" in ran.output


def test_a_scope_the_plugin_did_not_request_fails_naming_it(tmp_path: Path) -> None:
    """Reading holdings without requesting them: exit 1, the FAIL line names holdings:read and the fix."""
    init = GOOD_HOME.replace("    return [", "    ctx.data.holdings()\n    return [")
    project = write_project(tmp_path / "probe", init=init)
    ran = CliRunner().invoke(main, ["plugin", "check", str(project)])
    assert ran.exit_code == 1, ran.output
    assert "FAIL  scopes.only_requested" in ran.output
    assert "- holdings:read: home, persona" in ran.output
    assert "fix: request each scope" in ran.output


def test_json_output_lists_every_check_with_its_source(tmp_path: Path) -> None:
    """``--json`` prints one object: passed, the wheel, and each check with source, id and status."""
    project = write_project(tmp_path / "probe", init=GOOD_HOME.replace("return [", "return 'x' or ["))
    ran = CliRunner().invoke(main, ["plugin", "check", "--json", str(project)])
    assert ran.exit_code == 1, ran.output
    report = json.loads(ran.output)
    assert report["passed"] is False
    assert report["wheel"] == "fulcrum_kit_probe-0.1.0-py3-none-any.whl"
    checks = {c["id"]: c for c in report["checks"]}
    assert checks["manifest.present_and_valid"]["source"] == "registry"
    assert checks["hook.home_slot_offers"]["source"] == "hooks"
    assert checks["hook.home_slot_offers"]["status"] == "failed"
    assert "ResultError" in checks["hook.home_slot_offers"]["details"][0]


def test_a_project_named_after_another_plugin_fails_the_check(tmp_path: Path) -> None:
    """Plugin kit-probe built as the project fulcrum-wealth-checkup fails ``project.matches_id`` before
    it is ever submitted, with the name to write."""
    project = write_project(tmp_path / "probe")
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8").replace('"fulcrum-kit-probe"', '"fulcrum-wealth-checkup"')
    pyproject.write_text(text + '\n[tool.uv.build-backend]\nmodule-name = "fulcrum_kit_probe"\n', "utf-8")
    report = run_kit(project, deadlines=RELAXED)
    assert not report.passed
    (named,) = [c for c in report.checks if c.id == "project.matches_id"]
    assert named.status == "failed"
    assert named.details == (
        "the wheel's project is 'fulcrum-wealth-checkup', plugin 'kit-probe' must be 'fulcrum-kit-probe'",
    )


def test_a_plugin_that_fails_to_import_is_reported(tmp_path: Path) -> None:
    """An import error does not crash the command: plugin.loads fails with the error in its details."""
    project = write_project(tmp_path / "probe", init="import fulcrum_no_such_dependency\n" + GOOD_HOME)
    report = run_kit(project)
    (loads,) = [c for c in report.checks if c.id == "plugin.loads"]
    assert loads.status == "failed"
    assert any("fulcrum_no_such_dependency" in d for d in loads.details)


def test_an_invalid_manifest_fails_the_registry_check_and_skips_the_hooks(tmp_path: Path) -> None:
    """A manifest the registry refuses fails its check, naming the key, and the hooks are not called."""
    unparsable = run_kit(write_project(tmp_path / "b", manifest="id = 1\n"))
    statuses = {c.id: c.status for c in unparsable.checks}
    assert statuses["manifest.present_and_valid"] == "failed"
    assert statuses["plugin.loads"] == "skipped"
    (invalid,) = [c for c in unparsable.checks if c.id == "manifest.present_and_valid"]
    assert any("id" in d for d in invalid.details)


def test_a_directory_without_a_project_is_a_clear_error(tmp_path: Path) -> None:
    """No pyproject.toml: exit 1 with one line saying what to pass, no traceback."""
    ran = CliRunner().invoke(main, ["plugin", "check", str(tmp_path)])
    assert ran.exit_code == 1
    assert "has no pyproject.toml" in ran.output
    assert "Traceback" not in ran.output
    with pytest.raises(KitError):
        run_kit(tmp_path / "missing")


def test_a_project_that_does_not_build_is_a_clear_error(tmp_path: Path) -> None:
    """A pyproject.toml that is not TOML: the kit stops naming the file; one declaring the entry point
    that still does not build stops with uv's own message."""
    (tmp_path / "pyproject.toml").write_text("[project\n", encoding="utf-8")
    ran = CliRunner().invoke(main, ["plugin", "check", str(tmp_path)])
    assert ran.exit_code == 1
    assert f"{tmp_path / 'pyproject.toml'}: cannot be read as TOML" in ran.output
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\nversion = "1"\ndependencies = ["no such thing ==="]\n'
        '[project.entry-points.fulcrum]\nx = "x"\n',
        encoding="utf-8",
    )
    ran = CliRunner().invoke(main, ["plugin", "check", str(tmp_path)])
    assert ran.exit_code == 1
    assert "uv build failed" in ran.output


@pytest.mark.parametrize("where", ["no-pyproject", "no-entry-point", "project-not-a-table"])
def test_a_directory_that_is_no_plugin_project_says_so(tmp_path: Path, where: str) -> None:
    """Run at the repository's root or in a plugin's ``src``, the kit says the directory is not a plugin
    project: it tried to build it, and stopped with a build backend's error that never said so."""
    if where == "no-entry-point":
        (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "1"\n', encoding="utf-8")
    elif where == "project-not-a-table":
        (tmp_path / "pyproject.toml").write_text('project = "x"\n', encoding="utf-8")
    ran = CliRunner().invoke(main, ["plugin", "check", str(tmp_path)])
    assert ran.exit_code == 1
    assert f"Error: {tmp_path} is not a plugin project" in ran.output
    assert "uv build failed" not in ran.output


def test_the_text_report_prints_warnings_without_failing() -> None:
    """A warning (e.g. the template's placeholder description) is a ``warning:`` line; the kit passes."""
    from fulcrum_core.conformance.kit import KitCheck, KitReport
    from fulcrum_core.conformance.report import render_json, render_text

    report = KitReport(
        project="p",
        wheel="w.whl",
        plugin_id="demo",
        checks=(KitCheck(source="registry", id="wheel.well_formed", status="passed", message="ok"),),
        warnings=("description.zh-CN is still the template's placeholder",),
    )
    assert report.passed
    text = render_text(report)
    assert "warning: description.zh-CN is still the template's placeholder" in text.splitlines()
    assert "All 1 checks passed or were skipped" in text
    assert '"warnings":["description.zh-CN' in render_json(report)


@pytest.mark.parametrize("declared", ["dynamic", "setup-cfg", "poetry"])
def test_entry_points_declared_elsewhere_are_built_not_refused(tmp_path: Path, declared: str) -> None:
    """A project whose ``fulcrum`` entry point comes from setup.cfg (``dynamic``) or Poetry's table is
    taken to the build (which fails here for want of a package), never refused as no plugin project."""
    text = {
        "dynamic": '[project]\nname = "x"\nversion = "1"\ndynamic = ["entry-points"]\n',
        "setup-cfg": '[project]\nname = "x"\nversion = "1"\n',
        "poetry": '[tool.poetry.plugins.fulcrum]\nx = "x"\n',
    }[declared]
    (tmp_path / "pyproject.toml").write_text(text, encoding="utf-8")
    if declared == "setup-cfg":
        (tmp_path / "setup.cfg").write_text("[options.entry_points]\nfulcrum = x = x\n", encoding="utf-8")
    ran = CliRunner().invoke(main, ["plugin", "check", str(tmp_path)])
    assert "is not a plugin project" not in ran.output
