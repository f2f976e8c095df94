"""The account ids in a transaction's parameters (``TransactionType.account_fields``): each must be one
of the customer's accounts as the owning plugin sees them (a partner's pairwise ids), and the journal
keeps the bank's id, so the bank's record names the account and a partner's id never leaves its plugin.
"""

from __future__ import annotations

from typing import Any

import msgspec
from fulcrum_sdk.context import PluginContext
from fulcrum_sdk.errors import DataUnavailable
from fulcrum_sdk.models import TransactionType

from fulcrum_core.dispatch.context import RequestContexts
from fulcrum_core.errors import ServiceUnavailable, Unprocessable
from fulcrum_core.plugins import LoadedPlugin

__all__ = ["ACCOUNTS_SCOPE", "bank_params", "required_scopes", "seen_params", "wire_names"]

ACCOUNTS_SCOPE = "accounts:read"
"""What a type with account fields requires of its plugin: it names accounts only as it was shown them."""


def required_scopes(tx_type: TransactionType) -> frozenset[str]:
    """The scopes the owning plugin must hold for ``tx_type``: its own, ``transactions:write``, and
    ``accounts:read`` when its parameters name accounts."""
    extra = {"transactions:write", ACCOUNTS_SCOPE} if tx_type.account_fields else {"transactions:write"}
    return tx_type.required_scopes | extra


def _encode_names(tx_type: TransactionType) -> list[tuple[str, str]]:
    """Each account field of ``tx_type`` with its name in the JSON parameters."""
    names = {f.name: f.encode_name for f in msgspec.structs.fields(tx_type.params)}
    return [(name, names[name]) for name in sorted(tx_type.account_fields)]


def wire_names(tx_type: TransactionType) -> list[str]:
    """The JSON names of ``tx_type``'s account parameters, sorted (``GET /v1/transaction-types``)."""
    return sorted(wire for _name, wire in _encode_names(tx_type)) if tx_type.account_fields else []


def bank_params(
    tx_type: TransactionType,
    params: Any,
    params_json: dict[str, Any],
    *,
    contexts: RequestContexts,
    plugin: LoadedPlugin,
    ctx: PluginContext,
) -> dict[str, Any]:
    """``params_json`` for the journal, each account field's id replaced by the bank's; 422
    ``transaction.unknown_account`` naming ``params.<field>`` for an id that is none of the customer's
    accounts as ``plugin`` sees them (nor any, when it may not read them), 503 when they cannot be read.
    Reads the accounts: call it in a worker thread."""
    out = params_json
    for name, wire in _encode_names(tx_type):
        given = getattr(params, name)
        if given is None:  # an optional account left out
            continue
        field = f"params.{wire}"
        access = ctx.data.access(ACCOUNTS_SCOPE)
        if access == "unknown":
            raise _unavailable()
        bank_id: str | None = None
        if access == "allowed" and isinstance(given, str):
            try:
                bank_id = contexts.bank_account_id(plugin, given)
            except DataUnavailable:
                raise _unavailable() from None
        if bank_id is None:
            why = (
                "is not one of the customer's accounts as this plugin sees them" if access == "allowed"
                else "names an account, and the customer has not let this plugin read their accounts"
            )
            raise Unprocessable(
                f"{field} {why}; send an account id the plugin gave (its accounts:read view)",
                code="transaction.unknown_account",
                field=field,
            )
        if out is params_json:
            out = dict(params_json)
        out[wire] = bank_id
    return out


def seen_params(
    tx_type: TransactionType, params_json: dict[str, Any], *, contexts: RequestContexts, plugin: LoadedPlugin
) -> dict[str, Any]:
    """Journaled parameters (the bank's account ids) as ``plugin`` was sent them: its own account ids."""
    out = dict(params_json)
    for _name, wire in _encode_names(tx_type):
        bank_id = out.get(wire)
        if isinstance(bank_id, str):
            out[wire] = contexts.seen_account_id(plugin, bank_id)
    return out


def _unavailable() -> ServiceUnavailable:
    return ServiceUnavailable(
        "the customer's accounts could not be read to check the account named; nothing was carried out; "
        "retry shortly",
        code="transaction.data_unavailable",
        headers={"Retry-After": "1"},
    )
