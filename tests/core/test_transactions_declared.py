"""A transaction type states its product risk level and amount field as its manifest declares them,
or the host never registers it: suitability and the money limits then always apply."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
from fulcrum_core.plugins import PluginSet, get_plugin_manager
from fulcrum_core.settings import Settings
from fulcrum_sdk.models import LocalizedText, TransactionRequest, TransactionResult, TransactionType
from fulcrum_sdk.testing import PERSONAS

C3 = PERSONAS["young_professional"].id
TOO_MUCH = 10**12
"""Ten billion yuan in fen: far above the platform's single-transaction limit of ¥5,000,000."""


class Transfer(msgspec.Struct, frozen=True):
    """Parameters of ``pay.transfer``: a payee and an amount in fen."""

    payee: str
    amount_fen: int


def _payer(kit: Any, calls: list[TransactionRequest], declared: Any, **stated: Any) -> Any:
    """A plugin registering ``pay.transfer`` with ``stated`` (its risk and amount field), its manifest
    declaring ``declared`` for it (a table, or ``None`` for the bare key of older releases)."""

    def register(register: Callable[[TransactionType], None]) -> None:
        name = LocalizedText(zh_CN="转账")
        register(TransactionType(key="pay.transfer", name=name, params=Transfer, **stated))

    def execute(ctx: Any, request: TransactionRequest) -> TransactionResult:
        calls.append(request)
        return TransactionResult(status="succeeded", reference="T-1")

    types: Any = ["pay.transfer"] if declared is None else {"pay.transfer": declared}
    plugin = kit.plugin("payer", transaction_types=types, register_transaction_types=register,
                        execute_transaction=execute)
    if declared is None:  # the kit declares bare keys as registered: this manifest lists only the key
        manifest = msgspec.structs.replace(plugin.MANIFEST, transaction_types=("pay.transfer",))
        plugin.MANIFEST = manifest
    return plugin


def _load(settings: Settings, plugin: Any) -> PluginSet:
    return get_plugin_manager(settings, extra_plugins=[plugin], load_entry_points=False)


FIXED = {"risk_level": "R2", "amount_field": "amount_fen"}


def test_a_type_as_declared_is_registered(settings: Settings, kit: Any) -> None:
    """The same level and amount field in the code and the manifest: registered, nothing rejected."""
    loaded = _load(settings, _payer(kit, [], FIXED, risk_level="R2", amount_field="amount_fen"))
    assert set(loaded.transaction_types) == {"pay.transfer"}
    assert loaded.rejected_types == {}


def test_a_type_stating_no_risk_level_is_refused_at_startup(settings: Settings, kit: Any) -> None:
    """No level in the code: refused, the reason naming the plugin, the type and ``risk_level``."""
    loaded = _load(settings, _payer(kit, [], FIXED, amount_field="amount_fen"))
    assert "pay.transfer" not in loaded.all_transaction_types
    reason = loaded.rejected_types["payer:pay.transfer"]
    assert reason.startswith(
        "plugin 'payer': pay.transfer: risk_level: none stated; fix: state the product risk level R1–R5"
    )


def test_a_level_other_than_the_manifests_is_refused_at_startup(settings: Settings, kit: Any) -> None:
    """The code says R4 where the approved manifest says R2: refused, both levels named."""
    loaded = _load(settings, _payer(kit, [], FIXED, risk_level="R4", amount_field="amount_fen"))
    assert "pay.transfer" not in loaded.all_transaction_types
    assert loaded.rejected_types["payer:pay.transfer"].startswith(
        "plugin 'payer': pay.transfer: risk_level: registers 'R4' but fulcrum-plugin.toml declares 'R2'"
    )


def test_a_type_whose_description_would_read_reversed_is_refused_at_startup(
    settings: Settings, kit: Any
) -> None:
    """A type's name and description are shown to the customer: one holding a RIGHT-TO-LEFT OVERRIDE is
    never registered, the reason naming the field and the character; paragraphs in it are fine."""
    plugin = _payer(kit, [], FIXED, risk_level="R2", amount_field="amount_fen",
                    description=LocalizedText(zh_CN="向他人转账\n第二段", en="Pay \u202e001"))
    loaded = _load(settings, plugin)
    assert "pay.transfer" not in loaded.all_transaction_types
    assert loaded.rejected_types["payer:pay.transfer"] == (
        "plugin 'payer': pay.transfer: description.en: U+202E RIGHT-TO-LEFT OVERRIDE at index 4 is not "
        "allowed in display text"
    )


def test_a_type_its_manifest_only_lists_is_refused_at_startup(settings: Settings, kit: Any) -> None:
    """A manifest of an older release, listing the key with no declaration, still loads, but the type
    is refused: nothing about its risk or its amount was ever reviewed."""
    loaded = _load(settings, _payer(kit, [], None, risk_level="R2", amount_field="amount_fen"))
    assert "pay.transfer" not in loaded.all_transaction_types
    assert "payer" not in loaded.quarantined
    assert loaded.rejected_types["payer:pay.transfer"].startswith(
        "plugin 'payer': pay.transfer: fulcrum-plugin.toml declares no product risk level and no amount field"
    )


def test_a_money_type_cannot_opt_out_of_the_limits(make_app: Callable[..., Any], kit: Any) -> None:
    """A transfer claiming to move no money (``amount_field=None``, ``moves_money = false``) was let through
    with 10^12 fen; now the type is refused at startup, naming its ``amount_fen``, and the order never
    reaches the plugin. Declared with its amount field, the same order is 422 ``limits.max_amount``."""
    calls: list[TransactionRequest] = []
    no_money = {"risk_level": "R1", "moves_money": False}
    opted_out = _payer(kit, calls, no_money, risk_level="R1", amount_field=None)
    app = make_app(opted_out)
    reason = app.runtime.plugins.rejected_types["payer:pay.transfer"]
    assert "pay.transfer: amount_field: None (moves no money) but its parameters carry amount_fen" in reason
    order = {"type": "pay.transfer", "params": {"payee": "x", "amount_fen": TOO_MUCH}}
    response = _post(app, order)
    assert (response.status_code, response.json()["code"]) == (422, "transaction.unknown_type")

    declared = make_app(_payer(kit, calls, FIXED, risk_level="R2", amount_field="amount_fen"))
    response = _post(declared, order)
    assert response.status_code == 422, response.text
    assert (response.json()["code"], response.json()["field"]) == ("limits.max_amount", "params.amount_fen")
    assert calls == []


def _post(app: Any, payload: Any) -> Any:
    headers = {"Authorization": f"Bearer {app.token(C3)}", "Idempotency-Key": "k-1",
               "Content-Type": "application/json"}
    return app.client.post("/v1/transactions", content=msgspec.json.encode(payload), headers=headers)
