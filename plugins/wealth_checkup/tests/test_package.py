"""The plugin is packaged like any third-party plugin: entry point, manifest, hooks, wheel."""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
from pathlib import Path

import fulcrum_wealth_checkup
import pytest
from fulcrum_sdk.manifest import manifest_from_wheel
from fulcrum_sdk.testing import packaging_problems

PLUGIN_ID = "wealth-checkup"
DIST = "fulcrum-wealth-checkup"


def test_packaged_like_any_third_party_plugin() -> None:
    """Entry point, installed manifest, declared hooks and exports agree (the SDK's packaging check)."""
    assert packaging_problems(fulcrum_wealth_checkup, DIST) == []


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
