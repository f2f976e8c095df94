"""Orders: a transaction type that sells a service plan from its stock.

The type's key is ``{{ cookiecutter.__tx_type }}``. The host validates the parameters with
:class:`OrderParams`, checks scopes and limits, and journals the request before
``execute_transaction`` runs; this module keeps the plugin's own side effect (the stock) correct
when the host calls again with the same idempotency key.
"""

from __future__ import annotations

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
from fulcrum_sdk.idempotency import run_once

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
    """Declare the order type, with its product risk level and amount field exactly as
    ``[transaction_types]`` in fulcrum-plugin.toml declares them (the host refuses it otherwise)."""
    register(
        TransactionType(
            key=TRANSACTION_TYPE,
            name=T(zh_CN=f"订购{NAME.zh_CN}服务", en=f"Order {NAME.get('en')}"),
            params=OrderParams,
            # Every type states its product risk level. A service plan is not an investment: R1. An
            # investment product states its own ("R2"–"R5"), and the host refuses customers whose risk
            # tolerance is lower before this plugin is called; a type selling several products states
            # product_field (the parameter naming the product) and product_risks (each one's level).
            risk_level="R1",
            # The parameter holding the amount in fen: the host's single-transaction limit applies to
            # it. Only a type that moves no money says amount_field=None (moves_money = false).
            amount_field="amount_fen",
        )
    )


@hookimpl
def execute_transaction(ctx: PluginContext, request: TransactionRequest) -> TransactionResult:
    """Sell ``quantity`` of a plan, at most once per customer and idempotency key.

    ``run_once`` returns the stored result when the host calls again with the same key (a retried
    worker, reconciliation), so the stock is not taken twice; it refuses a concurrent second attempt
    (``<plugin>.request_in_progress``, which reconciliation recognises) instead of letting both sell;
    and when the sale went through but its result could not be stored, it raises ``OutcomeUnknown``
    so the host records the order as unknown rather than telling the customer it failed.
    """
    params: OrderParams = request.params
    plan = PLANS[params.plan_id]
    return run_once(
        ctx,
        request.idempotency_key,
        lambda: _sell(ctx, plan, params.quantity, request.id),
        code_prefix=PLUGIN_ID,
    )


def _sell(ctx: PluginContext, plan: Plan, quantity: int, request_id: str) -> TransactionResult:
    try:
        ctx.storage.add(plan.sold_key, quantity, upper=plan.stock)
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
