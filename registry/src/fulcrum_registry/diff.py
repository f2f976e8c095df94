"""What changed between a release and the previous approved one: the risk a reviewer must see first."""

from __future__ import annotations

from collections.abc import Iterable

from fulcrum_sdk.manifest import Manifest
from fulcrum_sdk.oauth_client import key_fingerprint

from fulcrum_registry.schemas import ReleaseDiff
from fulcrum_registry.workflow import high_sensitivity

__all__ = ["diff_manifests"]


def _added(new: Iterable[str], old: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(new) - set(old)))


def diff_manifests(
    *,
    release_id: int,
    manifest: Manifest,
    version: str,
    baseline_id: int | None = None,
    baseline: Manifest | None = None,
    baseline_version: str | None = None,
    baseline_granted: frozenset[str] | None = None,
) -> ReleaseDiff:
    """Compare ``manifest`` with ``baseline`` (None: no earlier approved release, everything is new).

    Scopes are compared with what the baseline was granted, falling back to what it requested.
    """
    requested = manifest.scopes.all
    before_scopes = (
        (baseline_granted if baseline_granted is not None else baseline.scopes.all)
        if baseline
        else frozenset()
    )
    added_scopes = _added(requested, before_scopes)
    return ReleaseDiff(
        release_id=release_id,
        version=version,
        baseline_release_id=baseline_id if baseline else None,
        baseline_version=baseline_version if baseline else None,
        added_scopes=added_scopes,
        added_high_sensitivity_scopes=tuple(sorted(high_sensitivity(added_scopes))),
        removed_scopes=_added(before_scopes, requested),
        added_slots=_added(manifest.slots, baseline.slots if baseline else ()),
        removed_slots=_added(baseline.slots if baseline else (), manifest.slots),
        added_transaction_types=_added(manifest.type_keys, baseline.type_keys if baseline else ()),
        removed_transaction_types=_added(baseline.type_keys if baseline else (), manifest.type_keys),
        changed_transaction_types=_declarations_changed(manifest, baseline),
        added_hooks=_added(manifest.hooks, baseline.hooks if baseline else ()),
        removed_hooks=_added(baseline.hooks if baseline else (), manifest.hooks),
        added_redirect_uris=_added(_redirects(manifest), _redirects(baseline)),
        removed_redirect_uris=_added(_redirects(baseline), _redirects(manifest)),
        added_key_ids=_added(_key_ids(manifest), _key_ids(baseline)),
        removed_key_ids=_added(_key_ids(baseline), _key_ids(manifest)),
    )


def _declarations_changed(manifest: Manifest, baseline: Manifest | None) -> tuple[str, ...]:
    """Each change of a kept type's declared risk or amount field, as ``key: field old → new``: a
    product's level raised between releases decides who may buy it, so a reviewer sees it spelled out."""
    if baseline is None:
        return ()
    changes: list[str] = []
    for key in sorted(set(manifest.type_keys) & set(baseline.type_keys)):
        new, old = _declared_facts(manifest, key), _declared_facts(baseline, key)
        changes += [
            f"{key}: {name} {old.get(name, 'undeclared')} → {new.get(name, 'undeclared')}"
            for name in sorted(set(new) | set(old))
            if new.get(name) != old.get(name)
        ]
    return tuple(changes)


def _declared_facts(manifest: Manifest, key: str) -> dict[str, str]:
    """One type's declaration flattened to ``{field: value}`` (each product as ``product <id>``)."""
    declared = manifest.declaration(key)
    if declared is None:
        return {}
    facts = {"risk_level": declared.risk_level, "product_field": declared.product_field,
             "amount_field": declared.amount_field if declared.moves_money else "none (moves no money)"}
    facts |= {f"product {product}": level for product, level in declared.product_risks.items()}
    if declared.account_fields:
        facts["account_fields"] = ", ".join(sorted(declared.account_fields))
    return {name: value for name, value in facts.items() if value is not None}


def _redirects(manifest: Manifest | None) -> tuple[str, ...]:
    return manifest.oauth.redirect_uris if manifest is not None and manifest.oauth is not None else ()


def _key_ids(manifest: Manifest | None) -> tuple[str, ...]:
    """Each signing key the backend's client would accept, as ``kid (thumbprint)``: new key material
    under an old kid is a new signer, and shows as one."""
    if manifest is None or manifest.oauth is None or manifest.oauth.jwks is None:
        return ()
    return tuple(key_fingerprint(key) for key in manifest.oauth.jwks.keys)
