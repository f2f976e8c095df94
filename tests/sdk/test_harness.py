"""The public test harness: runs one plugin's hooks like the host, with no server and no database."""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import msgspec
import pytest
from fulcrum_sdk import hookimpl
from fulcrum_sdk.context import DEFAULT_LOCALE
from fulcrum_sdk.errors import REQUEST_ENDED, DataUnavailable, ScopeDenied, TransactionRefused
from fulcrum_sdk.manifest import Manifest
from fulcrum_sdk.models import (
    Action,
    FeedItem,
    LocalizedText,
    SearchHit,
    SlotOffer,
    TransactionResult,
    TransactionType,
)
from fulcrum_sdk.testing import PERSONAS, PluginHarness, ResultError

T = LocalizedText(zh_CN="测试")
GO = Action(uri="fulcrum://demo")


def _manifest(
    kind: str = "department",
    required: tuple[str, ...] = (
        "slot:home.banner",
        "search:contribute",
        "feed:contribute",
        "holdings:read",
        "transactions:write",
    ),
    account_fields: tuple[str, ...] = (),
) -> Manifest:
    return msgspec.convert(
        {
            "id": "demo-plugin",
            "publisher": "test-bank",
            "kind": kind,
            "sdk": ">=0.1,<1",
            "hooks": [
                "home_slot_offers",
                "search",
                "feed_items",
                "register_transaction_types",
                "execute_transaction",
            ],
            "slots": ["home.banner/v1"],
            "transaction_types": {
                "demo.buy": {
                    "risk_level": "R2", "amount_field": "amount_fen", "account_fields": list(account_fields),
                },
            },
            "name": {"zh-CN": "演示"},
            "description": {"zh-CN": "演示插件"},
            "owner": {"name": "Demo", "email": "demo@example.com"},
            "scopes": {"required": dict.fromkeys(required, "needed by the demo")},
        },
        Manifest,
    )


class BuyParams(msgspec.Struct, frozen=True):
    """Parameters of the demo purchase."""

    product: str
    amount_fen: int


class Demo:
    """A plugin touching every hook; it reads holdings to prove scoped data reaches it."""

    @hookimpl
    def home_slot_offers(self, ctx: Any) -> list[SlotOffer]:
        return [
            SlotOffer(slot="home.banner/v1", key="b", title=T, action=GO),
            SlotOffer(slot="home.popup/v1", key="p", title=T, action=GO),
        ]

    @hookimpl
    async def search(self, ctx: Any, query: str) -> list[SearchHit]:
        return [SearchHit(key="q", kind="product", title=LocalizedText(zh_CN=query), action=GO)]

    @hookimpl
    def feed_items(self, ctx: Any, column: str) -> list[FeedItem]:
        return [
            FeedItem(key=c, column=c, kind="article", title=T, action=GO, published_at=ctx.now)
            for c in ("wealth", "life")
        ]

    @hookimpl
    def register_transaction_types(self, register: Any) -> None:
        register(TransactionType(key="demo.buy", name=T, params=BuyParams, risk_level="R2",
                                 amount_field="amount_fen"))

    @hookimpl
    def execute_transaction(self, ctx: Any, request: Any) -> TransactionResult:
        if request.params.amount_fen > 1_000_000:
            raise TransactionRefused("demo.too_much", LocalizedText(zh_CN="金额过大"), field="amount_fen")
        holdings = ctx.data.holdings()
        return TransactionResult(
            status="succeeded", reference=f"{request.params.product}:{len(holdings.items)}"
        )


def test_hooks_run_and_results_are_filtered_like_the_host() -> None:
    """Offers for ungranted slots and feed items of other columns are dropped; async hooks are awaited."""
    harness = PluginHarness(Demo(), manifest=_manifest(), persona="affluent")
    assert [o.key for o in harness.home_slot_offers()] == ["b"]
    assert [h.title.zh_CN for h in harness.search("基金")] == ["基金"]
    assert [i.key for i in harness.feed_items("life")] == ["life"]


def test_missing_placement_scopes_mean_no_results() -> None:
    """Without search:contribute or feed:contribute the harness returns nothing, as the host would."""
    harness = PluginHarness(Demo(), manifest=_manifest(), scopes=["slot:home.banner"])
    assert harness.search("x") == []
    assert harness.feed_items("wealth") == []


def test_transactions_decode_params_and_check_scopes() -> None:
    """execute() decodes parameters with the type's schema, checks scopes and calls the plugin."""
    harness = PluginHarness(Demo(), manifest=_manifest(), persona="affluent")
    assert set(harness.transaction_types()) == {"demo.buy"}
    result = harness.execute("demo.buy", {"product": "WP-1", "amount_fen": 100})
    assert result.reference == f"WP-1:{len(PERSONAS['affluent'].holdings.items)}"  # type: ignore[union-attr]
    with pytest.raises(msgspec.ValidationError):
        harness.execute("demo.buy", {"product": "WP-1", "amount_fen": "lots"})
    with pytest.raises(TransactionRefused):
        harness.execute("demo.buy", {"product": "WP-1", "amount_fen": 9_000_000})
    without_write = PluginHarness(Demo(), manifest=_manifest(), scopes=["holdings:read"])
    with pytest.raises(ScopeDenied, match="transactions:write"):
        without_write.execute("demo.buy", {"product": "WP-1", "amount_fen": 100})


def test_partner_needs_consent_in_the_harness_too() -> None:
    """A partner plugin gets a pairwise id and, with consented=(), no customer data."""
    harness = PluginHarness(Demo(), manifest=_manifest(kind="partner"), consented=())
    assert harness.context().customer.id != harness.record.id
    with pytest.raises(ScopeDenied, match="no live consent"):
        harness.execute("demo.buy", {"product": "WP-1", "amount_fen": 100})


def test_a_partner_sees_pairwise_account_ids_in_the_harness_too() -> None:
    """As on the host: a partner reads the persona's accounts under ids of its own (stable, never the
    bank's); an internal plugin reads the bank's."""
    scopes = ("accounts:read",)
    partner = PluginHarness(Demo(), manifest=_manifest(kind="partner", required=scopes))
    internal = PluginHarness(Demo(), manifest=_manifest(required=scopes))
    bank = internal.context().data.accounts()
    seen = partner.context().data.accounts()
    assert bank is not None
    assert seen is not None
    assert partner.record.accounts is not None
    assert [a.id for a in bank.items] == [a.id for a in partner.record.accounts.items]
    assert len(seen.items) == len(bank.items) > 0
    assert {a.id for a in seen.items}.isdisjoint({a.id for a in bank.items})
    assert [a.balance_fen for a in seen.items] == [a.balance_fen for a in bank.items]
    assert seen == partner.context().data.accounts()


class PayParams(msgspec.Struct, frozen=True):
    """Parameters of the demo payment: an account of the customer's and an amount."""

    account: str
    amount_fen: int


PAID = ("account",)
"""The Payer's parameter naming an account, as its manifest declares it."""


class Payer:
    """A plugin whose one transaction type names an account."""

    @hookimpl
    def register_transaction_types(self, register: Any) -> None:
        register(TransactionType(
            key="demo.buy", name=T, params=PayParams, risk_level="R2", amount_field="amount_fen",
            account_fields=frozenset({"account"}),
        ))

    @hookimpl
    def execute_transaction(self, ctx: Any, request: Any) -> TransactionResult:
        return TransactionResult(status="succeeded", reference=request.params.account)


def test_the_harness_refuses_an_account_id_the_plugin_was_not_shown() -> None:
    """As on the host: a partner pays from the id it reads in its accounts; the bank's id, a made-up
    one, or any once the customer has not consented to accounts:read, is refused naming the field;
    without accounts:read the type cannot run at all."""
    scopes = ("accounts:read", "transactions:write")
    partner = PluginHarness(Payer(), manifest=_manifest(kind="partner", required=scopes, account_fields=PAID))
    accounts = partner.context().data.accounts()
    assert accounts is not None
    seen = accounts.items[0].id
    assert partner.execute("demo.buy", {"account": seen, "amount_fen": 100}).reference == seen
    bank = PERSONAS["young_professional"].accounts.items[0].id  # type: ignore[union-attr]
    for forged in (bank, "0" * 32):
        with pytest.raises(TransactionRefused) as info:
            partner.execute("demo.buy", {"account": forged, "amount_fen": 100})
        assert (info.value.code, info.value.field) == ("transaction.unknown_account", "account")
    internal = PluginHarness(Payer(), manifest=_manifest(required=scopes, account_fields=PAID))
    assert internal.execute("demo.buy", {"account": bank, "amount_fen": 100}).reference == bank
    unconsented = PluginHarness(
        Payer(), manifest=_manifest(kind="partner", required=scopes, account_fields=PAID),
        consented=("profile:basic",),
    )
    with pytest.raises(TransactionRefused, match="account"):
        unconsented.execute("demo.buy", {"account": seen, "amount_fen": 100})
    ungranted = PluginHarness(
        Payer(), manifest=_manifest(required=scopes, account_fields=PAID), scopes=["transactions:write"]
    )
    with pytest.raises(ScopeDenied, match="accounts:read"):
        ungranted.execute("demo.buy", {"account": bank, "amount_fen": 100})


class CamelPayParams(msgspec.Struct, frozen=True, rename="camel"):
    """Parameters a client sends in camelCase (``fromAccount``, ``amountFen``)."""

    from_account: str
    amount_fen: Any = None


class CamelPayer:
    """A plugin whose params Struct renames its fields."""

    @hookimpl
    def register_transaction_types(self, register: Any) -> None:
        register(TransactionType(
            key="demo.buy", name=T, params=CamelPayParams, risk_level="R2", amount_field="amount_fen",
            account_fields=frozenset({"from_account"}),
        ))

    @hookimpl
    def execute_transaction(self, ctx: Any, request: Any) -> TransactionResult:
        return TransactionResult(status="succeeded", reference=request.params.from_account)


def test_the_harness_names_a_renamed_parameter_as_the_client_sends_it() -> None:
    """The host's limits and account check name ``amountFen`` and ``fromAccount``, the members a client
    sends, for a params Struct with ``rename="camel"``; so does the harness (it named the attributes)."""
    scopes = ("accounts:read", "transactions:write")
    harness = PluginHarness(
        CamelPayer(), manifest=_manifest(required=scopes, account_fields=("from_account",))
    )
    bank = PERSONAS["young_professional"].accounts.items[0].id  # type: ignore[union-attr]
    assert harness.execute("demo.buy", {"fromAccount": bank, "amountFen": 100}).reference == bank
    refused = []
    for params in (
        {"fromAccount": bank, "amountFen": 1.5},
        {"fromAccount": bank},
        {"fromAccount": bank, "amountFen": -1},
        {"fromAccount": bank, "amountFen": 500_000_001},
        {"fromAccount": "0" * 32, "amountFen": 100},
    ):
        with pytest.raises(TransactionRefused) as info:
            harness.execute("demo.buy", params)
        refused.append((info.value.code, info.value.field))
    assert refused == [
        ("limits.amount_not_fen", "amountFen"),
        ("limits.amount_not_fen", "amountFen"),
        ("limits.negative_amount", "amountFen"),
        ("limits.max_amount", "amountFen"),
        ("transaction.unknown_account", "fromAccount"),
    ]


def test_the_harness_plays_consents_that_could_not_be_read() -> None:
    """``consents_unknown=True``: as on the host when the consents did not arrive, customer data a
    partner needs consent to raises ``DataUnavailable``, and so does ``allows`` for it."""
    harness = PluginHarness(Demo(), manifest=_manifest(kind="partner"), consents_unknown=True)
    with pytest.raises(DataUnavailable):
        harness.context().data.allows("holdings:read")
    with pytest.raises(DataUnavailable):
        harness.execute("demo.buy", {"product": "WP-1", "amount_fen": 100})
    assert harness.context().data.allows("slot:home.banner")


def test_invalid_results_raise_result_error() -> None:
    """A hook returning the wrong shape fails in the harness exactly as the host would drop it."""

    class Sloppy:
        @hookimpl
        def search(self, ctx: Any, query: str) -> Any:
            return {"key": "not a list"}

    manifest = msgspec.structs.replace(_manifest(), hooks=("search",), slots=(), transaction_types=())
    with pytest.raises(ResultError, match="must return a list"):
        PluginHarness(Sloppy(), manifest=manifest).search("x")


def test_objects_need_an_explicit_manifest() -> None:
    """Passing a non-module plugin without manifest= is a TypeError telling what to do."""
    with pytest.raises(TypeError, match="manifest="):
        PluginHarness(Demo())


def test_module_beside_its_manifest_loads_it(tmp_path: Path) -> None:
    """A plugin module is paired with the fulcrum-plugin.toml in its package directory."""
    (tmp_path / "fulcrum-plugin.toml").write_text(
        """
id = "beside-demo"
publisher = "test-bank"
kind = "department"
sdk = ">=0.1,<1"
hooks = ["search"]
name = { "zh-CN" = "旁边" }
description = { "zh-CN" = "与清单同目录的模块" }
owner = { name = "Demo", email = "demo@example.com" }
scopes.required = { "search:contribute" = "answers searches" }
""",
        encoding="utf-8",
    )
    module = types.ModuleType("beside_demo")
    module.__file__ = str(tmp_path / "__init__.py")
    module.search = hookimpl(lambda ctx, query: [SearchHit(key="m", kind="service", title=T, action=GO)])  # type: ignore[attr-defined]
    assert [h.key for h in PluginHarness(module).search("x")] == ["m"]


def test_unknown_hook_fails_at_construction() -> None:
    """A misspelled hook is caught when the harness is built (check_pending), like the host does."""

    class Typo:
        @hookimpl
        def serch(self, ctx: Any, query: str) -> list[Any]:
            return []

    with pytest.raises(Exception, match="serch"):
        PluginHarness(Typo(), manifest=_manifest())


def test_a_context_kept_from_one_harness_call_reads_nothing_in_the_next() -> None:
    """As on the host, a context is good for its own call: one the plugin kept refuses every accessor
    afterwards, so a plugin relying on a kept ``ctx`` fails in its own tests, not first in production."""

    class Keeper(Demo):
        kept: list[Any] = []  # noqa: RUF012 - the test's own record of what the plugin kept

        @hookimpl
        def home_slot_offers(self, ctx: Any) -> list[SlotOffer]:
            if not self.kept:
                assert ctx.data.holdings() is not None  # usable during its own call
                self.kept.append(ctx)
            return []

    harness = PluginHarness(Keeper(), manifest=_manifest())
    harness.home_slot_offers()
    with pytest.raises(ScopeDenied) as denied:
        Keeper.kept[0].data.holdings()
    assert denied.value.reason == REQUEST_ENDED


def test_the_harness_shows_segment_and_branch_only_with_profile_basic() -> None:
    """As on the host: a plugin without ``profile:basic`` sees the customer number only, and the platform's
    default locale in place of the customer's own."""
    without = PluginHarness(Demo(), manifest=_manifest()).context().customer
    assert (without.segment, without.branch, without.locale) == ("", "", DEFAULT_LOCALE)
    granted = PluginHarness(Demo(), manifest=_manifest(required=("profile:basic", "slot:home.banner")))
    assert granted.context().customer.segment
