"""The plugin is packaged like any third-party plugin: entry point, manifest, hooks, wheel."""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
from pathlib import Path

import fulcrum_wealth_checkup
import pytest
from fulcrum_sdk.manifest import manifest_from_distribution, manifest_from_wheel, semantic_problems
from fulcrum_sdk.testing import PluginHarness, load_manifest_beside

PLUGIN_ID = "wealth-checkup"
DIST = "fulcrum-wealth-checkup"


def test_entry_point_loads_the_plugin_module() -> None:
    """The ``fulcrum`` entry point named by the plugin id loads this package."""
    (ep,) = [ep for ep in importlib.metadata.entry_points(group="fulcrum") if ep.name == PLUGIN_ID]
    assert ep.load() is fulcrum_wealth_checkup


def test_manifest_is_valid_and_matches_the_distribution() -> None:
    """The installed distribution's manifest parses, has no semantic problems and carries its version."""
    manifest = manifest_from_distribution(importlib.metadata.distribution(DIST))
    assert manifest.id == PLUGIN_ID
    assert manifest.version == importlib.metadata.version(DIST)
    assert semantic_problems(manifest) == []


def test_manifest_lists_exactly_the_hooks_implemented() -> None:
    """Every hook the manifest declares is implemented, and every implemented hook is declared."""
    manifest = load_manifest_beside(fulcrum_wealth_checkup)
    harness = PluginHarness(fulcrum_wealth_checkup)
    implemented = {caller.name for caller in harness.pm.get_hookcallers(fulcrum_wealth_checkup) or ()}
    assert implemented == set(manifest.hooks)
    assert set(harness.transaction_types()) == set(manifest.transaction_types)


def test_public_names_are_the_hooks() -> None:
    """The package exports its hook implementations and nothing else."""
    assert sorted(fulcrum_wealth_checkup.__all__) == sorted(
        load_manifest_beside(fulcrum_wealth_checkup).hooks
    )


@pytest.mark.slow
def test_wheel_ships_the_manifest(tmp_path: Path) -> None:
    """``uv build`` makes a wheel whose manifest ``manifest_from_wheel`` reads without importing it."""
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not on PATH")
    root = Path(__file__).resolve().parents[3]
    subprocess.run(  # noqa: S603 - a fixed command line
        [uv, "build", "--package", DIST, "--wheel", "--out-dir", str(tmp_path)],
        cwd=root,
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("*.whl")
    manifest = manifest_from_wheel(wheel)
    assert manifest.id == PLUGIN_ID
    assert manifest.version == importlib.metadata.version(DIST)
