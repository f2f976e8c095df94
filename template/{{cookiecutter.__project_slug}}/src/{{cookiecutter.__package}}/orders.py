"""Orders: a transaction type that sells a service plan from its stock.

The type's key is ``{{ cookiecutter.__tx_type }}``. The host validates the parameters with
:class:`OrderParams`, checks scopes and limits, and journals the request before
``execute_transaction`` runs; this module keeps the plugin's own side effect (the stock) correct
when the host calls again with the same idempotency key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Annotated, Literal

import msgspec
from fulcrum_sdk import (
    LimitExceeded,
    PluginContext,
    TransactionRefused,
    TransactionRequest,
    TransactionResult,
    TransactionType,
    hookimpl,
)
from fulcrum_sdk import LocalizedText as T

from {{ cookiecutter.__package }}._about import NAME, PLUGIN_ID
from {{ cookiecutter.__package }}.plans import PLANS, Plan

__all__ = ["TRANSACTION_TYPE", "OrderParams", "execute_transaction", "register_transaction_types"]

TRANSACTION_TYPE = "{{ cookiecutter.__tx_type }}"


class OrderParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What the customer orders; bad input is refused before anything is journaled."""

    plan_id: Literal["starter", "family"]
    quantity: Annotated[int, msgspec.Meta(ge=1, le=10)] = 1
    amount_fen: Annotated[int, msgspec.Meta(gt=0)]

    def __post_init__(self) -> None:
        # msgspec reports this ValueError as a validation error of the request's parameters.
        expected = PLANS[self.plan_id].price_fen * self.quantity
        if self.amount_fen != expected:
            # "<field>: why" lets the host name the field in its 422 (params.amount_fen).
            raise ValueError(f"amount_fen: must be {expected} for {self.quantity} x {self.plan_id}")


@hookimpl
def register_transaction_types(register: Callable[[TransactionType], None]) -> None:
    """Declare the order type; it sells a service, not an investment, so it has no risk level."""
    register(
        TransactionType(
            key=TRANSACTION_TYPE,
            name=T(zh_CN=f"订购{NAME.zh_CN}服务", en=f"Order {NAME.get('en')}"),
            params=OrderParams,
            amount_field="amount_fen",
            # An investment product sets risk_level ("R1"–"R5"): the host then refuses customers
            # whose risk tolerance is lower, before this plugin is called.
        )
    )


@hookimpl
def execute_transaction(ctx: PluginContext, request: TransactionRequest) -> TransactionResult:
    """Sell ``quantity`` of a plan, at most once per customer and idempotency key.

    When the host calls again with the same key (a retried worker, reconciliation) the stored result
    is returned and the stock is not taken twice; a claim counter bounded at 1 refuses a concurrent
    second attempt instead of letting both sell.
    """
    params: OrderParams = request.params
    digest = hashlib.sha256(f"{ctx.customer.id}\x00{request.idempotency_key}".encode()).hexdigest()
    stored = ctx.storage.get(f"order:{digest}")
    if stored is not None:
        return msgspec.convert(stored, TransactionResult)
    try:
        ctx.storage.add(f"claim:{digest}", 1, upper=1)
    except LimitExceeded:
        raise TransactionRefused(
            f"{PLUGIN_ID}.in_progress",
            T(zh_CN="该订单正在处理中，请勿重复提交", en="This order is already being processed"),
        ) from None
    try:
        result = _sell(ctx, PLANS[params.plan_id], params.quantity, request.id)
    except BaseException:
        ctx.storage.add(f"claim:{digest}", -1, lower=0)  # nothing was sold: a retry may try again
        raise
    ctx.storage.put(f"order:{digest}", msgspec.to_builtins(result))
    return result


def _sell(ctx: PluginContext, plan: Plan, quantity: int, request_id: str) -> TransactionResult:
    try:
        ctx.storage.add(f"sold:{plan.id}", quantity, upper=plan.stock)
    except LimitExceeded:
        raise TransactionRefused(
            f"{PLUGIN_ID}.sold_out",
            T(
                zh_CN=f"{plan.name.zh_CN}库存不足，请减少数量或稍后再试",
                en=f"Not enough {plan.name.get('en')} left; order fewer or try later",
            ),
            field="quantity",
        ) from None
    return TransactionResult(
        status="succeeded",
        reference=f"{PLUGIN_ID}-{request_id}",
        message=T(zh_CN=f"已订购{plan.name.zh_CN} × {quantity}", en=f"Ordered {quantity} x {plan.id}"),
        data={"plan_id": plan.id, "quantity": quantity},
    )
