"""Whether a registered transaction type states what its manifest declares, for the host and the harness.

A type's product risk and amount field decide which suitability rule and which money limit the host
applies; reviewers approve them from the manifest, so the running code must say exactly the same.
"""

from __future__ import annotations

from fulcrum_sdk.display import find_display_problem
from fulcrum_sdk.manifest import Manifest, TransactionTypeDeclaration, declaration_problems
from fulcrum_sdk.models import TransactionType

__all__ = ["type_problem"]

_AMOUNT_SUFFIX = "_fen"


def type_problem(tx_type: TransactionType, manifest: Manifest) -> str | None:
    """Why the host refuses ``tx_type`` as its plugin registered it, or ``None``: its risk level,
    products or amount field missing, not a field of its parameters, or not what the manifest declares,
    or its name or description holding a character display text refuses (:mod:`fulcrum_sdk.display`).
    The message names the field and says how to fix it."""
    shown = find_display_problem(tx_type)
    if shown is not None:
        return f"{tx_type.key}: {shown[0]}: {shown[1]}"
    declared = manifest.declaration(tx_type.key)
    if declared is None:
        return (
            f"{tx_type.key}: fulcrum-plugin.toml declares no product risk level and no amount field for "
            f'it; fix: declare [transaction_types."{tx_type.key}"] with risk_level and amount_field '
            "(or moves_money = false) as the type registers them"
        )
    bad = [p for p in declaration_problems(manifest) if p.key.startswith(f"transaction_types.{tx_type.key}.")]
    if bad:
        return f"{tx_type.key}: fulcrum-plugin.toml {bad[0].key}: {bad[0].problem}"
    return _own_problem(tx_type) or _mismatch(tx_type, declared)


def _own_problem(tx_type: TransactionType) -> str | None:
    """What the registered type itself gets wrong, whatever the manifest says."""
    fields = tx_type.params.__struct_fields__
    listed = ", ".join(fields) or "none"
    if tx_type.risk_level is None and not tx_type.product_risks:
        return (
            f"{tx_type.key}: risk_level: none stated; fix: state the product risk level R1–R5 "
            "(risk_level), or product_field and product_risks for a type selling several products"
        )
    if tx_type.risk_level is not None and (tx_type.product_risks or tx_type.product_field):
        return (
            f"{tx_type.key}: risk_level: give a fixed risk_level or product_field with product_risks, "
            "not both"
        )
    if tx_type.product_risks and tx_type.product_field not in fields:
        return (
            f"{tx_type.key}: product_field {tx_type.product_field!r} is not a field of "
            f"{tx_type.params.__name__} (fields: {listed}); fix: name the parameter holding the product id"
        )
    if tx_type.risk_of is not None and not tx_type.product_risks:
        return (
            f"{tx_type.key}: risk_of: the host must know the level of each product the type may sell; "
            "fix: state product_field and product_risks (risk_of may stay, to cross-check them)"
        )
    if tx_type.amount_field is not None and tx_type.amount_field not in fields:
        return (
            f"{tx_type.key}: amount_field {tx_type.amount_field!r} is not a field of "
            f"{tx_type.params.__name__} (fields: {listed}); fix: name the field that holds the amount in "
            "fen, or set amount_field=None if the type moves no money"
        )
    if tx_type.amount_field is None:
        amounts = [f for f in fields if f.endswith(_AMOUNT_SUFFIX)]
        if amounts:
            return (
                f"{tx_type.key}: amount_field: None (moves no money) but its parameters carry "
                f"{', '.join(amounts)}; fix: set amount_field={amounts[0]!r} so the host's limits apply"
            )
    return None


def _mismatch(tx_type: TransactionType, declared: TransactionTypeDeclaration) -> str | None:
    """The first field where the registered type differs from its declaration."""
    amount = declared.amount_field if declared.moves_money else None
    pairs = (
        ("risk_level", tx_type.risk_level, declared.risk_level),
        ("product_field", tx_type.product_field if tx_type.product_risks else None, declared.product_field),
        ("product_risks", dict(tx_type.product_risks), declared.product_risks),
        ("amount_field", tx_type.amount_field, amount),
        ("account_fields", sorted(tx_type.account_fields), sorted(declared.account_fields)),
    )
    for field, registered, approved in pairs:
        if registered != approved:
            return (
                f"{tx_type.key}: {field}: registers {_shown(field, registered)} but fulcrum-plugin.toml "
                f"declares {_shown(field, approved)}; fix: make the code and the manifest say the same "
                "(a changed declaration is a new release, for review)"
            )
    return None


def _shown(field: str, value: object) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={v}" for k, v in sorted(value.items())) + "}" if value else "no products"
    if value is None:
        return "none (moves no money)" if field == "amount_field" else "none"
    if isinstance(value, list):
        return ", ".join(value) if value else "none"
    return repr(value)
