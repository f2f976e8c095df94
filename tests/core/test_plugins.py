"""Plugin loading: grants, settings, quarantine of broken plugins, transaction types, runtime policy."""

from __future__ import annotations

import logging
import types
from typing import Any

import fulcrum_sdk
import msgspec
import pytest
from fulcrum_core.plugins import PluginPolicy, PluginSet, get_plugin_manager
from fulcrum_core.settings import PluginSettings, Settings
from fulcrum_sdk import hookimpl
from fulcrum_sdk.models import LocalizedText, TransactionType


class _Params(msgspec.Struct):
    amount_fen: int


def _tx_type(key: str) -> TransactionType:
    return TransactionType(key=key, name=LocalizedText(zh_CN="测试交易"), params=_Params, risk_level="R1",
                           amount_field="amount_fen")


def _load(settings: Settings, *plugins: object) -> PluginSet:
    return get_plugin_manager(settings, extra_plugins=plugins, load_entry_points=False)


def test_good_plugin_loads_with_manifest_grant(settings: Settings, kit: Any) -> None:
    """A valid plugin loads; its grant is the manifest's required plus optional scopes."""
    plugin = kit.plugin(
        "alpha", scopes=["search:contribute"], optional=["profile:basic"], search=lambda ctx, query: []
    )
    loaded = _load(settings, plugin)
    assert loaded.quarantined == {}
    alpha = loaded.loaded["alpha"]
    assert alpha.granted == frozenset({"search:contribute", "profile:basic"})
    assert alpha.hooks == frozenset({"search"})
    assert alpha.kind == "department"
    assert alpha.version == "1.0.0"
    assert loaded.enabled_for("search") == [alpha]
    assert loaded.enabled_for("feed_items") == []
    assert loaded.ready is True


def test_disabled_plugins_are_skipped_not_quarantined(settings: Settings, kit: Any) -> None:
    """Plugins listed in disabled_plugins, or disabled in settings.plugins, are skipped."""
    conf = msgspec.structs.replace(
        settings, disabled_plugins=frozenset({"alpha"}), plugins={"beta": PluginSettings(enabled=False)}
    )
    loaded = _load(
        conf,
        kit.plugin("alpha", search=lambda ctx, query: []),
        kit.plugin("beta", search=lambda ctx, query: []),
        kit.plugin("gamma", search=lambda ctx, query: []),
    )
    assert set(loaded.loaded) == {"gamma"}
    assert set(loaded.skipped) == {"alpha", "beta"}
    assert loaded.quarantined == {}


def test_settings_override_narrows_but_never_widens_the_grant(settings: Settings, kit: Any) -> None:
    """settings.plugins[id].scopes replaces the grant, minus anything the manifest does not request."""
    conf = msgspec.structs.replace(
        settings,
        plugins={
            "alpha": PluginSettings(
                scopes=frozenset({"search:contribute", "holdings:read"}), settings={"k": "v"}
            ),
        },
    )
    plugin = kit.plugin("alpha", scopes=["search:contribute", "profile:basic"], search=lambda ctx, query: [])
    alpha = _load(conf, plugin).loaded["alpha"]
    assert alpha.granted == frozenset({"search:contribute"})
    assert alpha.settings == {"k": "v"}


def test_invalid_manifest_semantics_quarantine_the_plugin(
    settings: Settings, kit: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """An unknown scope in the manifest quarantines the plugin with a log line naming key and fix."""
    plugin = kit.plugin("alpha", search=lambda ctx, query: [])
    plugin.MANIFEST = msgspec.structs.replace(
        plugin.MANIFEST,
        scopes=msgspec.convert(
            {"required": {"telepathy:read": "we read minds"}}, type(plugin.MANIFEST.scopes)
        ),
    )
    good = kit.plugin("beta", search=lambda ctx, query: [])
    with caplog.at_level(logging.ERROR, logger="fulcrum.plugins"):
        loaded = _load(settings, plugin, good)
    assert set(loaded.loaded) == {"beta"}
    assert "scopes.required.telepathy:read: unknown scope" in loaded.quarantined["alpha"]
    assert "fix:" in loaded.quarantined["alpha"]
    assert any("'alpha' quarantined" in r.getMessage() and "fix:" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("sdk", [">=2,<3", ">=0.1,<0.2"])
def test_incompatible_sdk_range_quarantines(settings: Settings, kit: Any, sdk: str) -> None:
    """A plugin built for another SDK (a later one, or 0.1 before transaction types were declared) is
    quarantined, naming both versions and the SDK's changelog, which says what changed between them."""
    plugin = kit.plugin("alpha", search=lambda ctx, query: [])
    plugin.MANIFEST = msgspec.structs.replace(plugin.MANIFEST, sdk=sdk)
    loaded = _load(settings, plugin)
    assert loaded.loaded == {}
    assert loaded.quarantined["alpha"].startswith(
        f"needs fulcrum-sdk {sdk} but the host runs fulcrum-sdk {fulcrum_sdk.__version__}; "
        "see the SDK's CHANGELOG (sdk/CHANGELOG.md) for what changed; fix: make the changes"
    )


def test_object_without_manifest_is_quarantined(settings: Settings, kit: Any) -> None:
    """An extra plugin with no MANIFEST (and no toml beside it) is quarantined; others still load."""

    class NoManifest:
        @hookimpl
        def search(self, ctx: Any, query: str) -> list[Any]:
            return []

    loaded = _load(settings, NoManifest(), kit.plugin("beta", search=lambda ctx, query: []))
    assert set(loaded.loaded) == {"beta"}
    assert "MANIFEST" in loaded.quarantined["NoManifest"]


def test_module_with_invalid_toml_beside_it_names_file_and_key(settings: Settings, tmp_path: Any) -> None:
    """A module whose fulcrum-plugin.toml is invalid is quarantined with the file and key named."""
    pkg = tmp_path / "brokenpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "fulcrum-plugin.toml").write_text('id = "broken"\nkind = "alien"\n')
    module = types.ModuleType("brokenpkg")
    module.__file__ = str(pkg / "__init__.py")
    loaded = _load(settings, module)
    reason = loaded.quarantined["brokenpkg"]
    assert "fulcrum-plugin.toml" in reason
    assert loaded.loaded == {}


def test_unknown_hook_is_caught_by_check_pending(settings: Settings, kit: Any) -> None:
    """A misspelled hook quarantines that plugin alone (pluggy's check_pending), naming the hook."""
    typo = kit.plugin("alpha", search=lambda ctx, query: [])
    typo.home_slot_offer = hookimpl(lambda ctx: [])  # missing the final "s"
    loaded = _load(settings, typo, kit.plugin("beta", search=lambda ctx, query: []))
    assert set(loaded.loaded) == {"beta"}
    assert "home_slot_offer" in loaded.quarantined["alpha"]
    assert loaded.pm.get_plugin("alpha") is None


def test_hookimpl_with_wrong_arguments_is_quarantined(settings: Settings, kit: Any) -> None:
    """A hookimpl asking for an argument the spec does not offer fails registration and is quarantined."""
    loaded = _load(settings, kit.plugin("alpha", search=lambda ctx, query, page: []))
    assert loaded.loaded == {}
    assert "cannot register" in loaded.quarantined["alpha"]


def test_hook_missing_from_manifest_is_quarantined(settings: Settings, kit: Any) -> None:
    """Implementing a hook the manifest does not declare quarantines the plugin (reviewers never saw it)."""
    plugin = kit.plugin("alpha", search=lambda ctx, query: [])
    plugin.feed_items = hookimpl(lambda ctx, column: [])
    loaded = _load(settings, plugin)
    assert loaded.loaded == {}
    assert "feed_items" in loaded.quarantined["alpha"]


def test_duplicate_plugin_id_keeps_the_first(settings: Settings, kit: Any) -> None:
    """A second plugin claiming a loaded id is quarantined; the first keeps running."""
    first = kit.plugin("alpha", search=lambda ctx, query: [])
    second = kit.plugin("alpha", search=lambda ctx, query: [])
    loaded = _load(settings, first, second)
    assert loaded.loaded["alpha"].plugin is first
    assert "a second plugin claims id 'alpha'" in loaded.quarantined["alpha (duplicate)"]


def test_transaction_types_are_collected_and_duplicates_rejected(settings: Settings, kit: Any) -> None:
    """Types are collected per plugin; a duplicate key keeps the first owner and logs the later one."""

    def register_a(register: Any) -> None:
        register(_tx_type("alpha.buy"))

    def register_b(register: Any) -> None:
        register(_tx_type("alpha.buy"))
        register(_tx_type("beta.sell"))

    alpha = kit.plugin(
        "alpha",
        transaction_types=["alpha.buy"],
        register_transaction_types=register_a,
        execute_transaction=lambda ctx, request: None,
    )
    beta = kit.plugin(
        "beta",
        transaction_types=["alpha.buy", "beta.sell"],
        register_transaction_types=register_b,
        execute_transaction=lambda ctx, request: None,
    )
    loaded = _load(settings, alpha, beta)
    assert {k: (p.id, t.key) for k, (p, t) in loaded.transaction_types.items()} == {
        "alpha.buy": ("alpha", "alpha.buy"),
        "beta.sell": ("beta", "beta.sell"),
    }
    assert "already owned by 'alpha'" in loaded.rejected_types["beta:alpha.buy"]


def test_a_plugin_that_is_not_running_cannot_take_over_a_type(settings: Settings, kit: Any) -> None:
    """A plugin sorting first claims another's transaction type: while it is not approved (or is
    suspended) the approved owner keeps the type; it never executes another plugin's transactions."""

    def register(register: Any) -> None:
        register(_tx_type("pension.contribute"))

    def plugin(pid: str) -> Any:
        return kit.plugin(
            pid, scopes=["transactions:write"], transaction_types=["pension.contribute"],
            register_transaction_types=register, execute_transaction=lambda ctx, request: None,
        )

    loaded = _load(settings, plugin("a-evil"), plugin("pension"))
    grant = frozenset({"transactions:write"})
    loaded.set_policy({"pension": PluginPolicy(active=True, granted_scopes=grant)})  # a-evil: unknown
    assert {k: p.id for k, (p, _) in loaded.transaction_types.items()} == {"pension.contribute": "pension"}
    loaded.set_policy({
        "pension": PluginPolicy(active=False, granted_scopes=frozenset(), reason="suspended"),
        "a-evil": PluginPolicy(active=False, granted_scopes=frozenset(), reason="not approved"),
    })
    assert loaded.transaction_types == {}


@pytest.mark.parametrize("raised", [SystemExit(2), GeneratorExit()], ids=["SystemExit", "GeneratorExit"])
def test_a_register_hook_raising_a_base_exception_is_rejected_like_any_failure(
    settings: Settings, kit: Any, raised: BaseException
) -> None:
    """``register_transaction_types`` raising ``SystemExit`` (or another BaseException) is that plugin's
    failure: its types are rejected and the host, and every other plugin, loads. It escaped before,
    and no host was built (for a release admitted late: the registry poll, and the watcher, ended)."""

    def exits(register: Any) -> None:
        raise raised

    alpha = kit.plugin(
        "alpha",
        transaction_types=["alpha.buy"],
        register_transaction_types=exits,
        execute_transaction=lambda ctx, request: None,
    )
    loaded = _load(settings, alpha, kit.plugin("beta", search=lambda ctx, query: []))
    assert loaded.transaction_types == {}
    assert type(raised).__name__ in loaded.rejected_types["alpha:*"]
    assert set(loaded.loaded) == {"alpha", "beta"}


def test_failing_or_undeclared_type_registration_is_rejected(settings: Settings, kit: Any) -> None:
    """A raising register hook or a type missing from the manifest is rejected; the plugin still loads."""

    def boom(register: Any) -> None:
        raise RuntimeError("no types today")

    def sneaky(register: Any) -> None:
        register(_tx_type("beta.hidden"))

    alpha = kit.plugin(
        "alpha",
        transaction_types=["alpha.buy"],
        register_transaction_types=boom,
        execute_transaction=lambda ctx, request: None,
    )
    beta = kit.plugin(
        "beta",
        transaction_types=["beta.sell"],
        register_transaction_types=sneaky,
        execute_transaction=lambda ctx, request: None,
    )
    loaded = _load(settings, alpha, beta)
    assert loaded.transaction_types == {}
    assert "no types today" in loaded.rejected_types["alpha:*"]
    assert "does not declare" in loaded.rejected_types["beta:beta.hidden"]
    assert set(loaded.loaded) == {"alpha", "beta"}


def test_policy_switches_plugins_and_narrows_grants(settings: Settings, kit: Any) -> None:
    """set_policy deactivates, narrows and restores plugins, affecting only later reads."""
    loaded = _load(
        settings,
        kit.plugin("alpha", search=lambda ctx, query: []),
        kit.plugin("beta", search=lambda ctx, query: []),
    )
    before = loaded.enabled_for("search")
    loaded.set_policy(
        {
            "alpha": PluginPolicy(active=False, granted_scopes=frozenset(), reason="suspended by review"),
            "beta": PluginPolicy(
                active=True, granted_scopes=frozenset({"search:contribute", "holdings:read"})
            ),
        }
    )
    assert [p.id for p in before] == ["alpha", "beta"]  # a request already running keeps its view
    assert [p.id for p in loaded.enabled_for("search")] == ["beta"]
    assert loaded.loaded["beta"].granted == frozenset({"search:contribute"})  # never beyond the manifest
    assert loaded.inactive == {"alpha": "suspended by review"}
    assert not loaded.is_active("alpha")
    loaded.set_policy(None)
    assert [p.id for p in loaded.enabled_for("search")] == ["alpha", "beta"]
    assert loaded.inactive == {}


def test_policy_leaves_unlisted_plugins_off_unless_dev_mode(settings: Settings, kit: Any) -> None:
    """A loaded plugin the registry does not know is inactive, except in development mode."""
    plugin = kit.plugin("alpha", search=lambda ctx, query: [])
    strict = _load(settings, plugin)
    strict.set_policy({})
    assert strict.enabled_for("search") == []
    assert strict.inactive == {"alpha": "not approved in the registry"}
    dev = _load(
        msgspec.structs.replace(settings, dev_mode=True), kit.plugin("alpha", search=lambda ctx, query: [])
    )
    dev.set_policy({})
    assert [p.id for p in dev.enabled_for("search")] == ["alpha"]


def test_transaction_types_follow_the_policy(settings: Settings, kit: Any) -> None:
    """Types of an inactive plugin leave transaction_types but stay in all_transaction_types."""

    def register(register: Any) -> None:
        register(_tx_type("alpha.buy"))

    loaded = _load(
        settings,
        kit.plugin(
            "alpha",
            transaction_types=["alpha.buy"],
            register_transaction_types=register,
            execute_transaction=lambda ctx, request: None,
        ),
    )
    loaded.set_policy({"alpha": PluginPolicy(active=False, granted_scopes=frozenset())})
    assert loaded.transaction_types == {}
    owner, _ = loaded.all_transaction_types["alpha.buy"]
    assert owner.granted == frozenset()


def test_manifest_attribute_is_validated_like_the_toml(settings: Settings, kit: Any) -> None:
    """A MANIFEST struct built in code with an invalid id is caught, as the TOML loader would."""
    plugin = kit.plugin("alpha", search=lambda ctx, query: [])
    plugin.MANIFEST = msgspec.structs.replace(plugin.MANIFEST, id="Not An Id")
    loaded = _load(settings, plugin)
    assert loaded.loaded == {}
    assert "MANIFEST" in loaded.quarantined["TestPlugin"]
    # named and said in words, as the TOML loader says it, never msgspec's regular expression
    assert "MANIFEST: id: must be 2 to 50 lowercase letters" in loaded.quarantined["TestPlugin"]
    assert "regex" not in loaded.quarantined["TestPlugin"]


class _Transfer(msgspec.Struct, frozen=True):
    payee: str
    amount_yuan: int  # the amount under another name than the type's amount_field says


def test_a_type_whose_amount_field_is_not_a_parameter_is_rejected(settings: Settings, kit: Any) -> None:
    """A misnamed amount field would leave the type without any platform limit: it is refused, named."""

    def register(register: Any) -> None:
        register(TransactionType(key="alpha.transfer", name=LocalizedText(zh_CN="转账"), params=_Transfer,
                                 risk_level="R1", amount_field="amount_fen"))
        register(TransactionType(key="alpha.note", name=LocalizedText(zh_CN="备注"), params=_Transfer,
                                 risk_level="R1", amount_field=None))
        register(TransactionType(key="alpha.pay", name=LocalizedText(zh_CN="付款"), params=_Transfer,
                                 risk_level="R1", amount_field="amount_yuan"))

    alpha = kit.plugin(
        "alpha",
        transaction_types=["alpha.transfer", "alpha.note", "alpha.pay"],
        register_transaction_types=register,
        execute_transaction=lambda ctx, request: None,
    )
    loaded = _load(settings, alpha)
    assert sorted(loaded.transaction_types) == ["alpha.note", "alpha.pay"]
    reason = loaded.rejected_types["alpha:alpha.transfer"]
    assert "amount_field 'amount_fen' is not a field of _Transfer (fields: payee, amount_yuan)" in reason
    assert "amount_field=None" in reason
