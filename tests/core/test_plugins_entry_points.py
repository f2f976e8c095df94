"""Loading real ``fulcrum`` entry points from distributions on sys.path, and quarantining broken ones."""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from fulcrum_core.plugins import get_plugin_manager
from fulcrum_core.settings import Settings

_GOOD_CODE = """
from fulcrum_sdk import SearchHit, Action, LocalizedText, hookimpl

@hookimpl
def search(ctx, query):
    return [SearchHit(key="hit", kind="function", title=LocalizedText(zh_CN="结果"),
                      action=Action(uri="fulcrum://x"))]
"""


def _manifest_toml(plugin_id: str, hooks: list[str]) -> str:
    return f'''
id = "{plugin_id}"
publisher = "test-bank"
kind = "department"
sdk = ">=0.1,<1"
hooks = {hooks!r}
name = {{ "zh-CN" = "测试", en = "Test" }}
description = {{ "zh-CN" = "测试插件", en = "A test plugin" }}
owner = {{ name = "Test Team", email = "test@example.com" }}

[scopes.required]
"search:contribute" = "shows results in search"
'''.replace("'", '"')


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., str]]:
    """Writes installed-looking distributions into a directory on sys.path; returns their package names."""
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    made: list[str] = []
    token = tmp_path.name.replace("-", "_").lower()

    def install(
        ep_name: str, *, code: str = _GOOD_CODE, manifest: str | None = None, manifest_id: str | None = None
    ) -> str:
        package = f"fxplug_{token}_{len(made)}"
        dist = package.replace("_", "-")
        pkg = root / package
        pkg.mkdir()
        (pkg / "__init__.py").write_text(code, encoding="utf-8")
        files = [f"{package}/__init__.py"]
        if manifest is None:
            manifest = _manifest_toml(manifest_id or ep_name, ["search"])
        if manifest:
            (pkg / "fulcrum-plugin.toml").write_text(manifest, encoding="utf-8")
            files.append(f"{package}/fulcrum-plugin.toml")
        info = root / f"{package}-1.2.3.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n", encoding="utf-8"
        )
        (info / "entry_points.txt").write_text(f"[fulcrum]\n{ep_name} = {package}\n", encoding="utf-8")
        files += [f"{info.name}/METADATA", f"{info.name}/entry_points.txt", f"{info.name}/RECORD"]
        (info / "RECORD").write_text("".join(f"{f},,\n" for f in files), encoding="utf-8")
        made.append(package)
        importlib.invalidate_caches()
        return package

    yield install
    for package in made:
        sys.modules.pop(package, None)


def _only_ours(settings: Settings, ours: set[str]) -> Settings:
    """Skip the workspace's own installed plugins so the test sees just the distributions it wrote."""
    others = {ep.name for ep in importlib.metadata.entry_points(group="fulcrum")} - ours
    return msgspec.structs.replace(settings, disabled_plugins=frozenset(others))


def test_entry_point_plugin_loads_with_distribution_version(settings: Settings, site: Any) -> None:
    """An installed distribution's entry point loads, its version taken from the distribution."""
    site("ep-good")
    loaded = get_plugin_manager(_only_ours(settings, {"ep-good"}))
    plugin = loaded.loaded["ep-good"]
    assert plugin.version == "1.2.3"
    assert plugin.hooks == frozenset({"search"})
    assert loaded.quarantined == {}


def test_import_error_is_quarantined_without_stopping_the_host(
    settings: Settings, site: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A plugin whose import raises is quarantined with the error named; the good one still loads."""
    site("ep-good")
    site("ep-broken", code="import a_module_that_does_not_exist\n")
    loaded = get_plugin_manager(_only_ours(settings, {"ep-good", "ep-broken"}))
    assert set(loaded.loaded) == {"ep-good"}
    reason = loaded.quarantined["ep-broken"]
    assert "import failed: ModuleNotFoundError" in reason
    assert "fix:" in reason
    assert any("ep-broken" in r.getMessage() for r in caplog.records)


def test_a_plugin_raising_at_import_is_pointed_at_its_own_line(settings: Settings, site: Any) -> None:
    """The quarantine reason names the exception and the plugin's file and line that raised it."""
    package = site("ep-raises", code='"""Doc."""\n\nraise RuntimeError("partner config missing")\n')
    loaded = get_plugin_manager(_only_ours(settings, {"ep-raises"}))
    reason = loaded.quarantined["ep-raises"]
    assert "import failed: RuntimeError: partner config missing" in reason
    assert f"{package}/__init__.py, line 3)" in reason


def test_manifest_id_must_equal_entry_point_name(settings: Settings, site: Any) -> None:
    """A manifest id different from the entry-point name quarantines the plugin before import."""
    package = site("ep-named", manifest_id="other-name")
    loaded = get_plugin_manager(_only_ours(settings, {"ep-named"}))
    assert "differs from entry-point name" in loaded.quarantined["ep-named"]
    assert package not in sys.modules  # judged by its manifest, never imported


def test_missing_manifest_is_quarantined_before_import(settings: Settings, site: Any) -> None:
    """A distribution without fulcrum-plugin.toml is quarantined and its code never runs."""
    package = site("ep-nomanifest", manifest="", code="raise SystemExit('must not be imported')\n")
    loaded = get_plugin_manager(_only_ours(settings, {"ep-nomanifest"}))
    assert "no fulcrum-plugin.toml" in loaded.quarantined["ep-nomanifest"]
    assert package not in sys.modules


def test_unparseable_manifest_names_the_file(settings: Settings, site: Any) -> None:
    """A manifest that is not TOML is quarantined with the file named."""
    site("ep-badtoml", manifest="id = = nonsense")
    loaded = get_plugin_manager(_only_ours(settings, {"ep-badtoml"}))
    reason = loaded.quarantined["ep-badtoml"]
    assert "fulcrum-plugin.toml" in reason
    assert "not valid TOML" in reason


def test_load_entry_points_false_ignores_installed_plugins(settings: Settings, site: Any) -> None:
    """With load_entry_points=False nothing installed is loaded."""
    site("ep-good")
    loaded = get_plugin_manager(settings, load_entry_points=False)
    assert loaded.loaded == {}
    assert loaded.quarantined == {}


@pytest.mark.parametrize("raised", ["GeneratorExit()", "Bail('no')"])
def test_plugin_raising_a_base_exception_on_import_is_quarantined_like_sys_exit(
    settings: Settings, site: Any, raised: str
) -> None:
    """A BaseException of the plugin's own (or GeneratorExit) while imported is quarantined like
    ``SystemExit``. It escaped before: at startup no host was built at all; for a release admitted
    late it escaped the registry poll, which ended the watcher's task, so no later suspension (the kill
    switch) or approval reached that worker until a restart."""
    site("ep-bails", code=f"class Bail(BaseException):\n    pass\n\nraise {raised}\n")
    site("ep-good")
    loaded = get_plugin_manager(_only_ours(settings, {"ep-bails", "ep-good"}))
    assert set(loaded.loaded) == {"ep-good"}
    assert "import failed" in loaded.quarantined["ep-bails"]


def test_plugin_exiting_on_import_does_not_stop_the_host(settings: Settings, site: Any) -> None:
    """A plugin calling sys.exit() while imported is quarantined; loading carries on."""
    site("ep-exits", code="import sys\nsys.exit(3)\n")
    site("ep-good")
    loaded = get_plugin_manager(_only_ours(settings, {"ep-exits", "ep-good"}))
    assert set(loaded.loaded) == {"ep-good"}
    assert "SystemExit" in loaded.quarantined["ep-exits"]
