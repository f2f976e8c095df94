"""``wealth.rebalance_order``: buy a listed product to move toward the target mix.

Rules that need no customer data (a listed product, the minimum purchase, the step) live in the
parameter Struct, so the host rejects a bad order before journaling it. Each listed product's risk
level is declared (``product_risks``, as in fulcrum-plugin.toml) so the host's suitability check
applies, and ``risk_of`` cross-checks the catalogue's; execution re-checks what
depends on the day and the customer (sale window, assessment validity) and is idempotent.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from fulcrum_sdk import (
    LocalizedText,
    PluginContext,
    TransactionRefused,
    TransactionRequest,
    TransactionResult,
    TransactionType,
    hookimpl,
)
from fulcrum_sdk.idempotency import run_once
from fulcrum_sdk.localtime import local_date
from fulcrum_sdk.models import RiskLevel, risk_allows
from fulcrum_sdk.money import yuan

from fulcrum_wealth_checkup.catalogue import Product, product, products

__all__ = ["REBALANCE_ORDER", "RebalanceOrder", "execute_transaction", "register_transaction_types"]

REBALANCE_ORDER = "wealth.rebalance_order"


class RebalanceOrder(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Parameters of a rebalancing order: a listed product and an amount in whole fen."""

    product_id: Annotated[str, msgspec.Meta(min_length=1, max_length=32, description="A listed product id.")]
    amount_fen: Annotated[int, msgspec.Meta(gt=0, description="The purchase amount in fen.")]

    def __post_init__(self) -> None:
        listed = product(self.product_id)
        if listed is None:
            raise ValueError(
                f"product_id: {self.product_id!r} is not a listed product; "
                f"choose one of {', '.join(products())}"
            )
        problem = listed.purchase_problem(self.amount_fen)
        if problem:
            raise ValueError(f"amount_fen: {problem}")


def _risk_of(order: Any) -> RiskLevel | None:
    """The chosen product's risk level, for the host's suitability check."""
    listed = product(getattr(order, "product_id", ""))
    return listed.risk_level if listed else None


@hookimpl
def register_transaction_types(register: Any) -> None:
    """Declare ``wealth.rebalance_order``."""
    register(
        TransactionType(
            key=REBALANCE_ORDER,
            name=LocalizedText(zh_CN="申购理财（配置调整）", en="Buy a product to rebalance"),
            description=LocalizedText(
                zh_CN="申购一只在售理财产品，使资产配置更接近目标；金额以分为单位，需满足起购金额与递增金额。",
                en="Buy a listed product to move toward your target mix; "
                "amount in fen, meeting the minimum and step.",
            ),
            params=RebalanceOrder,
            required_scopes=frozenset({"transactions:write", "profile:risk"}),
            product_field="product_id",
            product_risks={p.id: p.risk_level for p in products().values()},
            risk_of=_risk_of,
            amount_field="amount_fen",
        )
    )


def _refuse(code: str, zh: str, en: str, field: str | None = None) -> TransactionRefused:
    return TransactionRefused(f"wealth.{code}", LocalizedText(zh_CN=zh, en=en), field=field)


def _check_customer(ctx: PluginContext, chosen: Product) -> None:
    """Re-check what the parameters cannot know: today's sale window and the customer's assessment."""
    today = local_date(ctx.now)
    if not chosen.on_sale(today):
        raise _refuse(
            "product_closed",
            f"「{chosen.name.zh_CN}」本期已于{chosen.sale_until}结束募集，请选择其他在售产品。",
            f"{chosen.name.en} stopped selling on {chosen.sale_until}; choose another listed product.",
            "product_id",
        )
    if chosen.risk_level == "R1":
        return
    risk = ctx.data.risk()
    if risk is None or risk.is_expired(today):
        raise _refuse(
            "risk_assessment_required",
            "您的风险测评缺失或已过期，请先完成风险测评，再申购R1以上的产品。",
            "Your risk assessment is missing or expired; retake it before buying products above R1.",
        )
    if not risk_allows(risk.tolerance, chosen.risk_level):
        raise _refuse(
            "unsuitable",
            f"「{chosen.name.zh_CN}」风险等级为{chosen.risk_level}，高于您的风险承受能力{risk.tolerance}，无法申购。",
            f"{chosen.name.en} is {chosen.risk_level}, above your tolerance {risk.tolerance}.",
            "product_id",
        )


def _place(ctx: PluginContext, request: TransactionRequest, order: RebalanceOrder) -> TransactionResult:
    chosen = products()[order.product_id]
    _check_customer(ctx, chosen)
    return TransactionResult(
        status="succeeded",
        reference=f"WO-{request.id}"[:128],
        message=LocalizedText(
            zh_CN=f"已提交申购「{chosen.name.zh_CN}」{yuan(order.amount_fen)}，预计下一个工作日确认份额。",
            en=f"Order for {yuan(order.amount_fen)} of {chosen.name.en} placed; "
            "units are confirmed next working day.",
        ),
        data={
            "product_id": chosen.id,
            "amount_fen": order.amount_fen,
            "asset_class": chosen.asset_class,
            "risk_level": chosen.risk_level,
        },
    )


@hookimpl
def execute_transaction(ctx: PluginContext, request: TransactionRequest) -> TransactionResult:
    """Place the order once per idempotency key; refusals say what to do instead."""
    if request.type != REBALANCE_ORDER or not isinstance(request.params, RebalanceOrder):
        raise ValueError(f"wealth-checkup cannot execute {request.type!r}")
    order = request.params
    return run_once(ctx, request.idempotency_key, lambda: _place(ctx, request, order), code_prefix="wealth")
