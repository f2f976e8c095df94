"""Wiring pieces of the branch layer: the approved set read from the plugin set, the store's opening,
and the per-customer view a request uses."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from fulcrum_core.branches import ApprovedPlugin, BranchConfigStore, in_rollout
from fulcrum_core.branches.gate import CustomerBranchView
from fulcrum_core.branches.host import approved_from_plugins, open_branch_store
from fulcrum_core.plugins import PluginPolicy, get_plugin_manager
from fulcrum_core.settings import Settings, load_settings

REPO_ROOT = Path(__file__).resolve().parents[3]


def _plugin_set(kit: Any, settings: Settings) -> Any:
    plugins = [
        kit.plugin("alpha", home_slot_offers=lambda ctx: None),
        kit.plugin("beta", kind="partner", home_slot_offers=lambda ctx: None),
    ]
    return get_plugin_manager(settings, extra_plugins=plugins, load_entry_points=False)


def test_without_a_policy_every_loaded_plugin_is_approved(kit: Any, settings: Settings) -> None:
    """No registry policy: each loaded plugin is approved at its installed version, with its slots."""
    provide = approved_from_plugins(_plugin_set(kit, settings))
    approved = provide()
    assert set(approved) == {"alpha", "beta"}
    assert approved["beta"].kind == "partner"
    assert approved["alpha"].versions == ("1.0.0",)
    assert "home.banner/v1" in approved["alpha"].slots
    assert provide() is approved  # cached while the plugin set's snapshot is unchanged


def test_a_policy_approves_only_active_plugins(kit: Any, settings: Settings) -> None:
    """With a policy: active → approved; suspended or unknown → known but not approved."""
    plugins = _plugin_set(kit, settings)
    provide = approved_from_plugins(plugins)
    plugins.set_policy({"alpha": PluginPolicy(active=True, granted_scopes=frozenset({"slot:home.banner"}))})
    approved = provide()
    assert approved["alpha"].versions == ("1.0.0",)
    assert approved["beta"].versions == ()
    plugins.set_policy({"alpha": PluginPolicy(active=False, granted_scopes=frozenset(), reason="suspended")})
    assert provide()["alpha"].versions == ()


def test_dev_mode_approves_plugins_the_registry_does_not_know(kit: Any, settings: Settings) -> None:
    """In development mode a plugin missing from the policy still counts as approved."""
    plugins = _plugin_set(kit, settings)
    plugins.set_policy({})
    assert approved_from_plugins(plugins, dev_mode=True)()["beta"].versions == ("1.0.0",)


def test_open_branch_store_without_a_directory_is_no_branch_layer(settings: Settings, tmp_path: Path) -> None:
    """A missing directory gives None; an existing one a store already loaded once."""
    missing = msgspec.structs.replace(settings, branches_dir=str(tmp_path / "nope"))
    assert open_branch_store(missing, dict) is None
    directory = tmp_path / "here"
    directory.mkdir()
    (directory / "hq.toml").write_text("[plugins.alpha]\nenabled = true\n", encoding="utf-8")
    store = open_branch_store(msgspec.structs.replace(settings, branches_dir=str(directory)), dict)
    assert store is not None
    assert store.generation == 1
    assert store.errors()  # alpha is unknown to an empty approved set: reported, not raised


def test_customer_view_combines_switch_rollout_allow_list_and_version(
    write: Callable[[str, str], Path],
    branch_dir: Path,
    approved: dict[str, ApprovedPlugin],
    inventory: dict[str, int],
) -> None:
    """allows() is on x in rollout (or allow-listed) x version in range; pins only for allowed plugins."""
    write("hq.toml", '[plugins.pension]\nenabled = true\nversion = "<1"\npin = { "home.kingkong/v1" = 2 }\n')
    write("021.toml", '[plugins.merchant-promo]\nenabled = true\nrollout = 30\nallow = ["pilot-1"]\n'
          'pin = { "home.banner/v1" = 2 }\nsettings = { city = "sh" }\n')
    store = BranchConfigStore(branch_dir, lambda: approved, inventory, environ={})
    store.refresh()
    assert store.errors() == []
    customers = [f"cust-{n}" for n in range(200)]
    inside = next(c for c in customers if in_rollout(c, "merchant-promo", 30))
    outside = next(c for c in customers if not in_rollout(c, "merchant-promo", 30))
    view_in = CustomerBranchView(store, "021", inside)
    assert view_in.allows("merchant-promo", "0.2.0")
    assert view_in.allows("pension", "0.3.0")
    assert not view_in.allows("pension", "1.0.0")  # outside the HQ range
    assert not view_in.allows("wealth-checkup", "1.0.0")  # named nowhere
    assert view_in.pins(["merchant-promo", "pension"]) == {
        "home.banner/v1": {"merchant-promo": 2}, "home.kingkong/v1": {"pension": 2},
    }
    assert view_in.settings("merchant-promo") == {"city": "sh"}
    view_out = CustomerBranchView(store, "021", outside)
    assert not view_out.allows("merchant-promo", "0.2.0")
    assert view_out.pins(["merchant-promo"]) == {}
    assert CustomerBranchView(store, "021", "pilot-1").allows("merchant-promo", "0.2.0")
    other_branch = CustomerBranchView(store, "0755", inside)  # no file: HQ only
    assert not other_branch.allows("merchant-promo", "0.2.0")
    assert other_branch.allows("pension", "0.3.0")


def test_default_branch_directory_is_relative_to_the_working_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Default settings pick up branches/ when run from the repository root, and none elsewhere."""
    monkeypatch.chdir(REPO_ROOT)
    store = open_branch_store(load_settings(environ={}), dict)
    assert store is not None
    assert store.branches() == ("021", "028", "0755")
    monkeypatch.chdir(tmp_path)
    assert open_branch_store(load_settings(environ={}), dict) is None
    from_env = load_settings(environ={"FULCRUM_BRANCHES_DIR": str(REPO_ROOT / "branches")})
    assert open_branch_store(from_env, dict) is not None


def test_a_plugin_quarantined_here_stays_known_and_leaves_hq_toml_valid(
    kit: Any, settings: Settings, tmp_path: Path
) -> None:
    """A plugin that is broken on this host (here: it cannot register) is known by its manifest, as
    approved as the registry says, so ``hq.toml`` naming it stays valid and still switches on the
    others; before, it was 'unknown' and the whole HQ file was refused."""
    broken = kit.plugin("gamma", kind="partner", home_slot_offers=lambda ctx, nope: None)
    plugins = get_plugin_manager(
        settings, extra_plugins=[kit.plugin("alpha", home_slot_offers=lambda ctx: None), broken],
        load_entry_points=False,
    )
    assert set(plugins.loaded) == {"alpha"}
    assert "gamma" in plugins.quarantined
    provide = approved_from_plugins(plugins)
    assert provide()["gamma"].versions == ("1.0.0",)
    assert provide()["gamma"].kind == "partner"
    active = PluginPolicy(active=True, granted_scopes=frozenset({"slot:home.banner"}))
    plugins.set_policy({"alpha": active, "gamma": active})
    assert provide()["gamma"].versions == ("1.0.0",)
    plugins.set_policy({"alpha": active})
    assert provide()["gamma"].versions == ()  # the registry does not let it run: not approved
    plugins.set_policy({"alpha": active, "gamma": active})
    directory = tmp_path / "branches"
    directory.mkdir()
    (directory / "hq.toml").write_text(
        "[plugins.alpha]\nmandatory = true\n\n[plugins.gamma]\nenabled = true\n", encoding="utf-8"
    )
    store = open_branch_store(msgspec.structs.replace(settings, branches_dir=str(directory)), provide)
    assert store is not None
    assert store.errors() == []
