"""The small SDK helpers plugins share: money display, China local time, search matching, run-once."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest
from fulcrum_sdk import LocalizedText, TransactionRefused, TransactionResult
from fulcrum_sdk._declared import type_problem
from fulcrum_sdk.idempotency import run_once
from fulcrum_sdk.localtime import local_date
from fulcrum_sdk.manifest import Manifest, TransactionTypeDeclaration, parse_manifest
from fulcrum_sdk.matching import relevance
from fulcrum_sdk.models import TransactionType
from fulcrum_sdk.money import yuan
from fulcrum_sdk.storage import MemoryStorage
from fulcrum_sdk.testing import PluginHarness

MANIFEST = parse_manifest(
    b"""
id = "helpers"
publisher = "example-dept"
kind = "department"
sdk = ">=0.1"
hooks = []
name = { "zh-CN" = "helpers" }
description = { "zh-CN" = "helpers" }
owner = { name = "n", email = "n@example.com" }
""",
    file="helpers.toml",
)


@pytest.mark.parametrize(
    ("fen", "shown"),
    [(0, "¥0.00"), (5, "¥0.05"), (123456, "¥1,234.56"), (-100, "-¥1.00"), (10**11, "¥1,000,000,000.00")],
)
def test_yuan_formats_fen_exactly(fen: int, shown: str) -> None:
    """Integer fen are shown as yuan with thousands separators and two decimals, never through a float."""
    assert yuan(fen) == shown


def test_local_date_is_china_time() -> None:
    """16:30 UTC on 31 December is already 1 January in China."""
    assert local_date(datetime(2026, 12, 31, 16, 30, tzinfo=UTC)) == date(2027, 1, 1)
    naive = datetime(2026, 12, 31, 15, 59)  # noqa: DTZ001 - a naive moment is taken as UTC
    assert local_date(naive) == date(2026, 12, 31)


@pytest.mark.parametrize("hour", [0, 15, 16, 23])
@pytest.mark.parametrize(
    "zone", [UTC, timezone(timedelta(0)), timezone(timedelta(hours=8)), timezone(timedelta(hours=-5))],
    ids=["utc", "zero-offset", "china", "minus-five"],
)
def test_local_date_agrees_whatever_the_moments_zone(hour: int, zone: timezone) -> None:
    """UTC moments (``ctx.now``) take a shortcut; every zone gives the date China's clocks show."""
    moment = datetime(2026, 12, 31, hour, 30, tzinfo=zone)
    assert local_date(moment) == moment.astimezone(timezone(timedelta(hours=8))).date()


@pytest.mark.parametrize(
    ("query", "score"),
    [("养老", 1.0), ("个人养老金怎么缴", 0.9), ("养", 0.0), ("养老金", 0.9), ("基金", 0.0)],
)
def test_relevance_grades_matches(query: str, score: float) -> None:
    """Exact term 1.0, query containing a term 0.9, term containing a 2+ character query 0.7, else 0."""
    assert relevance(query, ["养老", "个人养老"]) == score


def _ok() -> TransactionResult:
    return TransactionResult(status="succeeded", reference="r-1")


def test_run_once_replays_the_first_result() -> None:
    """A second call with the same key returns the stored result without running the action again."""
    ctx = PluginHarness(object(), manifest=MANIFEST).context()
    calls: list[int] = []

    def action() -> TransactionResult:
        calls.append(1)
        return _ok()

    assert run_once(ctx, "k", action, code_prefix="x") == run_once(ctx, "k", action, code_prefix="x")
    assert calls == [1]


def test_run_once_releases_the_claim_when_the_action_fails() -> None:
    """An action that raises leaves nothing claimed, so a retry may run it."""
    ctx = PluginHarness(object(), manifest=MANIFEST).context()

    def refuse() -> TransactionResult:
        raise TransactionRefused("x.no", LocalizedText(zh_CN="不行"))

    with pytest.raises(TransactionRefused):
        run_once(ctx, "k", refuse, code_prefix="x")
    assert run_once(ctx, "k", _ok, code_prefix="x").reference == "r-1"


def test_run_once_keeps_the_claim_when_the_action_cannot_confirm_its_outcome() -> None:
    """An action that raises ``OutcomeUnknown`` (the partner's system timed out after taking the order)
    may have gone through: the host records the transaction as unknown and reconciliation calls again
    with the same key. That call must not run the action a second time (a second payment): the claim
    stays, and it is refused as in progress, as when the result could not be stored."""
    from fulcrum_sdk.errors import OutcomeUnknown

    ctx = PluginHarness(object(), manifest=MANIFEST).context()
    applied: list[int] = []

    def action() -> TransactionResult:
        applied.append(1)
        raise OutcomeUnknown("the order system timed out after taking the order")

    with pytest.raises(OutcomeUnknown):
        run_once(ctx, "k", action, code_prefix="x")
    with pytest.raises(TransactionRefused) as again:
        run_once(ctx, "k", action, code_prefix="x")
    assert again.value.code == "x.request_in_progress"
    assert applied == [1]


def test_run_once_refuses_a_concurrent_duplicate() -> None:
    """While the first attempt runs, a second one with the same key is refused as in progress."""
    storage = MemoryStorage()
    ctx = PluginHarness(object(), manifest=MANIFEST, storage=storage).context()
    started, finish = threading.Event(), threading.Event()

    def slow() -> TransactionResult:
        started.set()
        finish.wait(5)
        return _ok()

    worker = threading.Thread(target=run_once, args=(ctx, "k", slow), kwargs={"code_prefix": "x"})
    worker.start()
    started.wait(5)
    with pytest.raises(TransactionRefused) as refused:
        run_once(ctx, "k", _ok, code_prefix="x")
    finish.set()
    worker.join(5)
    assert refused.value.code == "x.request_in_progress"


def test_run_once_says_the_outcome_is_unknown_when_the_result_cannot_be_stored() -> None:
    """Applied but not remembered: OutcomeUnknown (the host records "unknown", never "failed"), and the
    claim stays, so a retry is refused as in progress instead of applying the action twice."""
    from fulcrum_sdk.errors import OutcomeUnknown, StorageUnavailable

    class Flaky(MemoryStorage):
        def put(self, key: str, value: object) -> None:
            raise StorageUnavailable("store away")

    ctx = PluginHarness(object(), manifest=MANIFEST, storage=Flaky()).context()
    applied: list[int] = []

    def action() -> TransactionResult:
        applied.append(1)
        return _ok()

    with pytest.raises(OutcomeUnknown, match="applied but could not be stored"):
        run_once(ctx, "k", action, code_prefix="x")
    with pytest.raises(TransactionRefused) as retried:
        run_once(ctx, "k", action, code_prefix="x")
    assert retried.value.code == "x.request_in_progress"
    assert applied == [1]


def test_run_once_whose_claim_went_unacknowledged_says_nothing_was_applied() -> None:
    """Taking the claim commits unacknowledged: whether the key is claimed is unknown, but the action
    never ran, so it is a plain ``StorageUnavailable`` (the host answers "not carried out"), not an
    unknown outcome; and a release that fails after the action raised does not hide the action's error."""
    from fulcrum_sdk.errors import OutcomeUnknown, StorageOutcomeUnknown, StorageUnavailable

    class LostClaim(MemoryStorage):
        def add(self, key: str, delta: int, *, lower: int | None = None, upper: int | None = None) -> int:
            super().add(key, delta, lower=lower, upper=upper)
            raise StorageOutcomeUnknown("the write's commit was not acknowledged")

    ctx = PluginHarness(object(), manifest=MANIFEST, storage=LostClaim()).context()
    applied: list[int] = []

    def action() -> TransactionResult:
        applied.append(1)
        return _ok()

    with pytest.raises(StorageUnavailable) as claimed:
        run_once(ctx, "k", action, code_prefix="x")
    assert not isinstance(claimed.value, OutcomeUnknown)
    assert applied == []

    class NoRelease(MemoryStorage):
        def add(self, key: str, delta: int, *, lower: int | None = None, upper: int | None = None) -> int:
            if delta < 0:
                raise StorageUnavailable("store away")
            return super().add(key, delta, lower=lower, upper=upper)

    def refuse() -> TransactionResult:
        raise TransactionRefused("x.no", LocalizedText(zh_CN="不行"))

    ctx = PluginHarness(object(), manifest=MANIFEST, storage=NoRelease()).context()
    with pytest.raises(TransactionRefused, match=r"x\.no"):
        run_once(ctx, "k", refuse, code_prefix="x")


def test_packaging_problems_names_each_mismatch() -> None:
    """A module whose exports and hooks disagree with its manifest, checked against another
    distribution, gets one problem per mismatch; a correct plugin gets none."""
    import types

    import fulcrum_pension
    from fulcrum_sdk.testing import packaging_problems

    assert packaging_problems(fulcrum_pension, "fulcrum-pension") == []
    problems = packaging_problems(fulcrum_pension, "fulcrum-wealth-checkup")
    assert problems == ["the installed manifest's id is 'wealth-checkup', not 'pension'"]

    fake = types.ModuleType("fulcrum_pension_fake")
    fake.__file__ = fulcrum_pension.__file__  # the same manifest beside it, but no hooks
    fake.__all__ = ["home_slot_offers"]  # type: ignore[attr-defined]
    problems = packaging_problems(fake, "fulcrum-pension")
    assert any(p.startswith("entry point 'pension' loads") for p in problems)
    assert any(p.startswith("manifest hooks") for p in problems)
    assert any(p.startswith("__all__ is") for p in problems)


MINIMAL_MANIFEST = """
id = "payer"
publisher = "test-bank"
kind = "department"
sdk = ">=0.1,<1"
hooks = ["register_transaction_types", "execute_transaction"]
name = { "zh-CN" = "付款" }
description = { "zh-CN" = "付款插件" }
owner = { name = "Test", email = "t@example.com" }
"""


class _Pay(msgspec.Struct):
    fund: str
    amount: int


def _typed(**kwargs: Any) -> TransactionType:
    kwargs.setdefault("amount_field", "amount")
    return TransactionType(key="x.pay", name=LocalizedText(zh_CN="付款"), params=_Pay, **kwargs)


def _declaring(declared: Any) -> Manifest:
    return msgspec.structs.replace(
        parse_manifest(MINIMAL_MANIFEST, file="t"),
        transaction_types=msgspec.convert(declared, dict[str, TransactionTypeDeclaration]),
    )


_FIXED = {"x.pay": {"risk_level": "R2", "amount_field": "amount"}}
_PER_PRODUCT = {"x.pay": {"product_field": "fund", "product_risks": {"F-1": "R2"}, "amount_field": "amount"}}


@pytest.mark.parametrize(
    ("tx_type", "declared", "words"),
    [
        (_typed(risk_level="R2"), _FIXED, None),
        (_typed(product_field="fund", product_risks={"F-1": "R2"}), _PER_PRODUCT, None),
        (_typed(risk_level="R2"), None, "x.pay: fulcrum-plugin.toml declares no product risk level"),
        (_typed(), _FIXED, "x.pay: risk_level: none stated; fix: state the product risk level R1–R5"),
        (_typed(risk_level="R4"), _FIXED, "x.pay: risk_level: registers 'R4' but fulcrum-plugin.toml "
                                          "declares 'R2'"),
        (_typed(product_field="fund", product_risks={"F-1": "R3"}), _PER_PRODUCT,
         "x.pay: product_risks: registers {F-1=R3} but fulcrum-plugin.toml declares {F-1=R2}"),
        (_typed(product_field="isin", product_risks={"F-1": "R2"}), _PER_PRODUCT,
         "x.pay: product_field 'isin' is not a field of _Pay (fields: fund, amount)"),
        (_typed(risk_of=lambda p: "R2"), _FIXED, "x.pay: risk_level: none stated"),
        (_typed(risk_level="R2", risk_of=lambda p: "R2"), _FIXED,
         "x.pay: risk_of: the host must know the level of each product"),
        (_typed(risk_level="R2", amount_field="amount_fen"), _FIXED,
         "x.pay: amount_field 'amount_fen' is not a field of _Pay (fields: fund, amount)"),
        (_typed(risk_level="R2", amount_field=None), _FIXED,
         "x.pay: amount_field: registers none (moves no money) but fulcrum-plugin.toml declares 'amount'"),
        (_typed(risk_level="R2"), {"x.pay": {"risk_level": "R2"}},
         "x.pay: fulcrum-plugin.toml transaction_types.x.pay.amount_field: required"),
        (_typed(risk_level="R2", account_fields=frozenset({"fund"})),
         {"x.pay": {**_FIXED["x.pay"], "account_fields": ["fund"]}}, None),
        (_typed(risk_level="R2", account_fields=frozenset({"fund"})), _FIXED,
         "x.pay: account_fields: registers fund but fulcrum-plugin.toml declares none"),
        (_typed(risk_level="R2"), {"x.pay": {**_FIXED["x.pay"], "account_fields": ["fund"]}},
         "x.pay: account_fields: registers none but fulcrum-plugin.toml declares fund"),
    ],
    ids=["fixed", "per-product", "undeclared", "no-level", "level-mismatch", "product-level-mismatch",
         "product-field-unknown", "risk-of-without-products", "risk-of-with-fixed", "amount-field-unknown",
         "amount-field-dropped", "declaration-incomplete", "accounts", "accounts-undeclared",
         "accounts-dropped"],
)
def test_type_problem_names_the_field_and_the_mismatch(
    tx_type: TransactionType, declared: Any, words: str | None
) -> None:
    """The host registers a type only when it states a level and an amount field and both equal its
    manifest declaration; otherwise the reason names the type, the field and the fix."""
    problem = type_problem(tx_type, _declaring(declared or {}))
    if words is None:
        assert problem is None
    else:
        assert problem is not None
        assert problem.startswith(words), problem
        assert "fix" in problem or "required" in problem


def test_a_type_moving_no_money_cannot_carry_an_amount_in_fen() -> None:
    """``amount_field=None`` on parameters carrying ``*_fen`` would skip the limits: refused, named."""

    class Order(msgspec.Struct):
        amount_fen: int

    tx_type = TransactionType(key="x.pay", name=LocalizedText(zh_CN="付款"), params=Order, risk_level="R1",
                              amount_field=None)
    problem = type_problem(tx_type, _declaring({"x.pay": {"risk_level": "R1", "moves_money": False}}))
    assert problem == (
        "x.pay: amount_field: None (moves no money) but its parameters carry amount_fen; fix: set "
        "amount_field='amount_fen' so the host's limits apply"
    )


def test_a_type_must_state_its_amount_field() -> None:
    """No default: a type says which parameter holds its amount, or ``None`` explicitly."""
    with pytest.raises(TypeError, match="amount_field"):
        TransactionType(key="x.pay", name=LocalizedText(zh_CN="付款"), params=_Pay, risk_level="R1")  # type: ignore[call-arg]


def test_packaging_problems_reports_a_misnamed_amount_field(monkeypatch: pytest.MonkeyPatch) -> None:
    """The packaging check asks the same question of every type the module registers."""
    import fulcrum_pension
    from fulcrum_sdk import testing

    monkeypatch.setattr(testing, "type_problem", lambda tx_type, manifest: f"{tx_type.key}: misnamed")
    problems = testing.packaging_problems(fulcrum_pension, "fulcrum-pension")
    assert "pension.personal_contribution: misnamed" in problems
