{%- set c = cookiecutter -%}
"""The plugin is discoverable the way the host discovers it, and its manifest matches its code."""

from __future__ import annotations

import importlib.metadata

from fulcrum_sdk.manifest import manifest_from_distribution, semantic_problems
from fulcrum_sdk.testing import PluginHarness, load_manifest_beside, make_plugin_manager

import {{ c.__package }} as plugin

PLUGIN_ID = "{{ c.plugin_id }}"
DIST = "{{ c.__project_slug }}"


def test_entry_point_loads_the_plugin_module() -> None:
    """The ``fulcrum`` entry point named by the plugin id loads this package (and is the only one)."""
    found = [
        f"{ep.name} = {ep.value}"
        for ep in importlib.metadata.entry_points(group="fulcrum")
        if ep.name == PLUGIN_ID or ep.module == plugin.__name__
    ]
    assert found == [f"{PLUGIN_ID} = {plugin.__name__}"], (
        f'pyproject.toml needs exactly `"{PLUGIN_ID}" = "{plugin.__name__}"` under '
        f"[project.entry-points.fulcrum] (the name is the manifest's id); installed: {found or 'none'}. "
        "Entry points are read at install time: reinstall (`uv pip install -e .`) after changing them."
    )
    (entry_point,) = importlib.metadata.entry_points(group="fulcrum", name=PLUGIN_ID)
    assert entry_point.load() is plugin


def test_installed_manifest_is_valid_for_the_platform() -> None:
    """The manifest read from the installed distribution validates and names no unknown scope or hook."""
    manifest = manifest_from_distribution(importlib.metadata.distribution(DIST))
    assert manifest.id == PLUGIN_ID
    assert manifest.version == importlib.metadata.version(DIST)
    assert semantic_problems(manifest) == []


def test_manifest_hooks_are_exactly_the_implemented_hooks() -> None:
    """Every hook the manifest declares is implemented, and every implemented hook is declared."""
    pm = make_plugin_manager()
    pm.register(plugin, name=PLUGIN_ID)
    implemented = {caller.name for caller in pm.get_hookcallers(plugin) or ()}
    assert implemented == set(load_manifest_beside(plugin).hooks)


def test_harness_loads_the_plugin_with_no_unknown_hook() -> None:
    """The harness registers the plugin and finds no misspelled hook (``check_pending``)."""
    harness = PluginHarness(plugin)
    assert harness.manifest.id == PLUGIN_ID


def test_public_names_are_the_hooks() -> None:
    """The package exports its hook implementations and nothing else."""
    assert sorted(plugin.__all__) == sorted(load_manifest_beside(plugin).hooks)
