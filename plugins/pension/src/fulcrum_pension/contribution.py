"""``pension.personal_contribution``: pay into the personal pension account under the annual cap.

The amount is validated by the parameter Struct (a positive whole number of fen, at most the cap)
before the host journals anything. Execution needs the account to be open and reserves the amount
with an atomic bounded counter: two concurrent contributions can never both pass the cap. A refusal
says how much room is left.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from fulcrum_sdk import (
    LimitExceeded,
    LocalizedText,
    PluginContext,
    TransactionRefused,
    TransactionRequest,
    TransactionResult,
    TransactionType,
    hookimpl,
)
from fulcrum_sdk.idempotency import run_once
from fulcrum_sdk.money import yuan

from fulcrum_pension.cap import ANNUAL_CAP_FEN, Room, counter_key, keep_baseline

__all__ = [
    "PERSONAL_CONTRIBUTION",
    "PersonalContribution",
    "execute_transaction",
    "register_transaction_types",
]

PERSONAL_CONTRIBUTION = "pension.personal_contribution"


class PersonalContribution(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Parameters of a contribution: the amount in whole fen, positive and at most one year's cap."""

    amount_fen: Annotated[
        int,
        msgspec.Meta(
            gt=0,
            le=ANNUAL_CAP_FEN,
            description="The contribution in fen: 1 to 1,200,000 (12,000 CNY, the annual cap).",
        ),
    ]


@hookimpl
def register_transaction_types(register: Any) -> None:
    """Declare ``pension.personal_contribution``."""
    register(
        TransactionType(
            key=PERSONAL_CONTRIBUTION,
            name=LocalizedText(zh_CN="个人养老金缴存", en="Personal pension contribution"),
            description=LocalizedText(
                zh_CN="向个人养老金资金账户缴存，每人每年合计不超过 ¥12,000.00，金额以分为单位。",
                en="Pay into your personal pension account; at most ¥12,000.00 per person per year, "
                "amount in fen.",
            ),
            params=PersonalContribution,
            required_scopes=frozenset({"transactions:write", "pension:read"}),
            risk_level="R1",  # a payment into the customer's own pension account, not an investment
            amount_field="amount_fen",
        )
    )


def _refuse(code: str, zh: str, en: str) -> TransactionRefused:
    return TransactionRefused(f"pension.{code}", LocalizedText(zh_CN=zh, en=en), field="amount_fen")


def _over_cap(room_now: Room, amount: int) -> TransactionRefused:
    """The refusal of ``amount`` when ``room_now`` leaves less, naming what is left."""
    year, left = room_now.year, room_now.left_fen
    if left == 0:
        return _refuse(
            "annual_cap_reached",
            f"您{year}年的个人养老金缴存额度 ¥12,000.00 已用完，{year + 1}年1月1日起可继续缴存。",
            f"Your ¥12,000.00 cap for {year} is used up; contributions reopen on 1 January {year + 1}.",
        )
    return _refuse(
        "annual_cap_exceeded",
        f"本次缴存 {yuan(amount)} 超出年度上限：{year}年还可缴存 {yuan(left)}（上限 ¥12,000.00），"
        f"请将金额调整为不超过 {yuan(left)}。",
        f"{yuan(amount)} would pass the annual cap: {yuan(left)} is left for {year} "
        f"(cap ¥12,000.00); contribute at most {yuan(left)}.",
    )


def _contribute(ctx: PluginContext, request: TransactionRequest, amount: int) -> TransactionResult:
    pension = ctx.data.pension()
    account = pension.personal_pension if pension is not None else None
    if account is None or not account.opened:
        raise TransactionRefused(
            "pension.account_not_opened",
            LocalizedText(
                zh_CN="您尚未开立个人养老金资金账户，请先在“养老”页面开户后再缴存。",
                en="You have no personal pension account yet; open one on the Pension page first.",
            ),
        )
    before = keep_baseline(ctx, account)
    if amount > before.left_fen:
        raise _over_cap(before, amount)
    try:
        # Atomic: the baseline plus everything contributed here stays within the cap, whoever races us.
        key = counter_key(ctx.customer.id, before.year)
        recorded = ctx.storage.add(key, amount, upper=ANNUAL_CAP_FEN - (before.baseline_fen or 0))
    except LimitExceeded as exc:  # another contribution got in since the read
        raise _over_cap(msgspec.structs.replace(before, recorded_fen=exc.current), amount) from None
    after = msgspec.structs.replace(before, recorded_fen=recorded)  # add returned the new total
    return TransactionResult(
        status="succeeded",
        reference=f"PP-{request.id}"[:128],
        message=LocalizedText(
            zh_CN=f"已缴存 {yuan(amount)}，{after.year}年还可缴存 {yuan(after.left_fen)}。",
            en=f"{yuan(amount)} contributed; {yuan(after.left_fen)} left for {after.year}.",
        ),
        data={
            "amount_fen": amount,
            "year": after.year,
            "contributed_this_year_fen": after.used_fen,
            "room_left_fen": after.left_fen,
        },
    )


@hookimpl
def execute_transaction(ctx: PluginContext, request: TransactionRequest) -> TransactionResult:
    """Contribute once per idempotency key; refusals name the room left."""
    if request.type != PERSONAL_CONTRIBUTION or not isinstance(request.params, PersonalContribution):
        raise ValueError(f"pension cannot execute {request.type!r}")
    amount = request.params.amount_fen
    return run_once(
        ctx, request.idempotency_key, lambda: _contribute(ctx, request, amount), code_prefix="pension"
    )
