"""docs/partner-guide.md runs as written: its ``sh`` blocks in order, and the served commands exist."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import click
import msgspec
import pytest
from click.testing import CliRunner
from fulcrum_core.cli import main

_OUTER_ENV = {"VIRTUAL_ENV", "PYTHONPATH", "UV_PROJECT_ENVIRONMENT"}
"""This checkout's environment, which a partner's fresh shell would not have."""

ROOT = Path(__file__).resolve().parents[2]
GUIDE = (ROOT / "docs" / "partner-guide.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"^```(sh[^\n]*)\n(.*?)^```", GUIDE, flags=re.MULTILINE | re.DOTALL)


def _lines(kind: str) -> list[str]:
    """The command lines of the guide's blocks whose info string is exactly ``kind``."""
    return [line for info, body in BLOCKS if info == kind for line in body.splitlines() if line.strip()]


def test_the_guide_has_only_known_kinds_of_blocks() -> None:
    """Every shell block is run in order (``sh``), against a registry (``sh registry``) or checked apart."""
    assert {info for info, _ in BLOCKS} == {"sh", "sh serve", "sh registry", "sh branches", "sh demo"}


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("uv") is None, reason="uv is not on PATH; the guide's commands use it")
def test_the_guides_commands_run_in_order(tmp_path: Path) -> None:
    """New project → its own tests in its own environment → plugin check → wheel build, all succeed."""
    script = "set -euo pipefail\n" + "\n".join(_lines("sh")) + "\n"
    env = {k: v for k, v in os.environ.items() if k not in _OUTER_ENV}
    env |= {"WORK": str(tmp_path), "UV_NO_PROGRESS": "1"}
    bash = shutil.which("bash")
    assert bash is not None
    ran = subprocess.run(
        [bash, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    assert ran.returncode == 0, ran.stdout[-4000:] + ran.stderr[-4000:]
    assert re.search(r"^\d+ passed in ", ran.stdout, flags=re.MULTILINE), ran.stdout[-2000:]
    assert "PASS  scopes.only_requested" in ran.stdout
    assert "FAIL" not in ran.stdout
    wheel = tmp_path / "fulcrum-city-coupons" / "dist" / "fulcrum_city_coupons-0.1.0-py3-none-any.whl"
    assert wheel.is_file()
    assert wheel.name in "\n".join(_lines("sh registry"))


def test_the_served_commands_are_the_ones_the_dev_host_test_runs() -> None:
    """``fulcrum dev PATH --port N`` and a curl of /v1/home: tests/core/devhost runs exactly these."""
    served = _lines("sh serve")
    assert [line.split()[:3] for line in served] == [["uv", "run", "fulcrum"], ["curl", "-s", "-H"]]
    assert served[0].split()[3] == "dev"
    assert "--port" in served[0]
    assert served[1].endswith("/v1/home")
    assert (ROOT / "tests" / "core" / "devhost" / "test_dev_host.py").is_file()
    ran = CliRunner().invoke(main, ["dev", "--help"])
    assert ran.exit_code == 0
    assert "--port" in ran.output
    assert "--customer" in ran.output


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _OUTER_ENV}
    return env | {"UV_NO_PROGRESS": "1", "FULCRUM": str(ROOT), **extra}


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("uv") is None, reason="uv is not on PATH; the guide's commands use it")
def test_the_registry_steps_approve_the_release_and_it_shows_on_home(bake: Any, tmp_path: Path) -> None:
    """Submit, review and two approvals as the guide has them; the approved wheel then shows on /v1/home."""
    from fulcrum_core.app import build_runtime, create_app
    from fulcrum_core.data.db import Database
    from fulcrum_core.registry_host.host import open_registry
    from fulcrum_core.settings import load_settings
    from fulcrum_sdk.scopes import APP_SCOPES
    from litestar.testing import TestClient

    baked = bake(
        plugin_name="城市优惠",
        plugin_name_en="City Coupons",
        publisher_id="city-coupons",
        publisher_kind="partner",
    )
    assert baked.exit_code == 0, baked.exception
    project: Path = baked.project_path
    env = _clean_env(
        WORK=str(project.parent),
        FULCRUM_STATE_DIR=str(tmp_path / "state"),
        FULCRUM_DATABASE_URL=f"sqlite:///{tmp_path / 'registry.db'}",
        FULCRUM_BRANCHES_DIR=str(tmp_path / "no-branches"),
    )
    build = [line for line in _lines("sh") if line.startswith("uv build")]
    built = subprocess.run(
        [*build[0].split()], cwd=project, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert built.returncode == 0, built.stderr
    settings = load_settings(environ=env)
    db = Database(settings.resolved_database_url())
    try:
        db.upgrade()
        open_registry(settings, db).create_publisher(
            {
                "id": "city-coupons",
                "name": "城市优惠科技",
                "kind": "partner",
                "contact": "dev@city-coupons.example.com",
            },
            actor="platform-team",
        )
    finally:
        db.dispose()

    script = "set -euo pipefail\n" + "\n".join(_lines("sh registry")) + "\n"
    bash = shutil.which("bash")
    assert bash is not None
    ran = subprocess.run(
        [bash, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert ran.returncode == 0, ran.stdout[-4000:] + ran.stderr[-4000:]
    assert "release 1: city-coupons 0.1.0 [in_review]" in ran.stdout
    assert "release 1: city-coupons 0.1.0 [approved]" in ran.stdout, ran.stdout[-3000:]

    # The guide's branch step seeds the demo's first-party releases into this registry, then runs
    # against a copy of the repository's branch files and must pass `fulcrum branch check`.
    work = tmp_path / "work"
    shutil.copytree(ROOT / "branches", work / "branches")
    branch_script = "set -euo pipefail\n" + "\n".join(_lines("sh branches")) + "\n"
    branched = subprocess.run(
        [bash, "-c", branch_script],
        cwd=work,
        env={**env, "UV_PROJECT": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert branched.returncode == 0, branched.stdout + branched.stderr
    assert "ok: 4 file(s) checked" in branched.stdout
    settings = msgspec.structs.replace(settings, branches_dir=str(work / "branches"))

    # The host, with the wheel installed (unpacked on sys.path), obeys the registry and serves the plugin.
    wheel = project / "dist" / "fulcrum_city_coupons-0.1.0-py3-none-any.whl"
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    sys.path.insert(0, str(site))
    try:
        runtime = build_runtime(settings, obey_registry=True)
        token = runtime.tokens.issue("c-0755-001", sorted(APP_SCOPES), kind="customer")
        with TestClient(create_app(settings, runtime=runtime)) as client:
            home = client.get("/v1/home", headers={"Authorization": f"Bearer {token}"})
    finally:
        sys.path.remove(str(site))
        for name in [n for n in sys.modules if n.startswith("fulcrum_city_coupons")]:
            del sys.modules[name]
    assert home.status_code == 200, home.text
    plugins = {item["plugin"] for items in home.json()["slots"].values() for item in items}
    assert "city-coupons" in plugins, home.json()


def test_the_demo_block_installs_the_submitted_wheel_and_starts_the_demo() -> None:
    """The ``sh demo`` block (not run: it installs into this environment) names the built wheel and demo."""
    demo = _lines("sh demo")
    assert demo[0].startswith("uv pip install ")
    assert demo[0].endswith('dist/fulcrum_city_coupons-0.1.0-py3-none-any.whl"')
    assert demo[1] == "uv run fulcrum demo"
    assert "demo" in main.list_commands(click.Context(main))


def test_the_page_example_is_the_baked_projects_own(bake: Any) -> None:
    """"Your own screens" shows the ``page`` hook of the project of step 1 as it is baked, and that hook
    opens the three links the project hands out."""
    import importlib

    from fulcrum_sdk.testing import PluginHarness

    section = GUIDE.split("## Your own screens", 1)[1].split("\n## ", 1)[0]
    example = re.search(r"^```python\n(.*?)^```", section, flags=re.MULTILINE | re.DOTALL)
    assert example is not None
    result = bake(plugin_name="城市优惠", plugin_name_en="City Coupons", publisher_id="city-coupons",
                  publisher_kind="partner")
    assert result.exit_code == 0, result.exception
    package = result.project_path / "src" / "fulcrum_city_coupons"
    assert example.group(1) in (package / "pages.py").read_text(encoding="utf-8")
    sys.path.insert(0, str(package.parent))
    try:
        harness = PluginHarness(importlib.import_module("fulcrum_city_coupons"))
        pages = {path: harness.page(path) for path in ("home", "guide", "plans/starter", "no-such-page")}
    finally:
        sys.path.remove(str(package.parent))
        for name in [n for n in sys.modules if n.startswith("fulcrum_city_coupons")]:
            del sys.modules[name]
    home = pages["home"]
    assert home is not None
    assert [line.label.en for line in home.sections[0].lines] == ["Starter plan", "Family plan"]
    assert pages["guide"] is not None
    assert pages["plans/starter"] is not None
    assert pages["no-such-page"] is None
