"""The review diff: what a release asks for that the previous approved release did not."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fulcrum_registry import InvalidInput, NotFound, RegistryService

Submit = Callable[..., Any]
Approve = Callable[..., Any]
Manifest = Callable[..., dict[str, Any]]

V2 = {
    "hooks": ["home_slot_offers", "execute_transaction"],
    "slots": ["home.notice/v1", "home.banner/v1"],
    "transaction_types": {"demo.subscribe": {"risk_level": "R2", "amount_field": "amount_fen"}},
    "scopes": {
        "required": {
            "slot:home.notice": "notices",
            "slot:home.banner": "banner",
            "transactions:write": "subscribe to products",
        },
        "optional": {"holdings:read": "tailor offers"},
    },
}


def test_first_release_shows_everything_as_new(registry: RegistryService, submit: Submit) -> None:
    """Without an approved predecessor the whole request is new."""
    diff = registry.diff(submit().id)
    assert diff.baseline_release_id is None
    assert diff.added_scopes == ("slot:home.notice",)
    assert diff.added_slots == ("home.notice/v1",)
    assert diff.added_hooks == ("home_slot_offers",)


def test_diff_against_the_previous_approved_release(
    registry: RegistryService, submit: Submit, approve: Approve, manifest: Manifest
) -> None:
    """New scopes, slots, transaction types and hooks are listed; high-sensitivity additions flagged."""
    v1 = submit().id
    approve(v1)
    v2 = submit(version="2.0.0", manifest=manifest(**V2)).id
    diff = registry.diff(v2)
    assert (diff.baseline_release_id, diff.baseline_version) == (v1, "1.0.0")
    assert diff.added_scopes == ("holdings:read", "slot:home.banner", "transactions:write")
    assert diff.added_high_sensitivity_scopes == ("holdings:read", "transactions:write")
    assert diff.added_slots == ("home.banner/v1",)
    assert diff.added_transaction_types == ("demo.subscribe",)
    assert diff.added_hooks == ("execute_transaction",)
    assert diff.removed_scopes == diff.removed_slots == diff.removed_hooks == ()
    assert not diff.is_empty


def test_a_withheld_scope_asked_for_again_is_new(
    registry: RegistryService, submit: Submit, approve: Approve, manifest: Manifest
) -> None:
    """A scope the reviewer withheld last time shows up as added when requested again."""
    body = manifest(
        scopes={"required": {"slot:home.notice": "notices"}, "optional": {"location:city": "local"}}
    )
    v1 = submit(manifest=body).id
    approve(v1, grant=["slot:home.notice"])
    v2 = submit(version="1.1.0", manifest=body).id
    assert registry.diff(v2).added_scopes == ("location:city",)


def test_unapproved_releases_are_not_a_baseline(
    registry: RegistryService, submit: Submit, approve: Approve, manifest: Manifest
) -> None:
    """Rejected releases are skipped when looking for the baseline."""
    v1 = submit().id
    approve(v1)
    v15 = submit(version="1.5.0", manifest=manifest(**V2)).id
    registry.reject(v15, reviewer="bob", reasons=["too much"])
    v2 = submit(version="2.0.0").id
    diff = registry.diff(v2)
    assert diff.baseline_release_id == v1
    assert diff.is_empty


def test_removed_capabilities_are_listed(
    registry: RegistryService, submit: Submit, approve: Approve, manifest: Manifest
) -> None:
    """What the new release no longer asks for is listed as removed."""
    v1 = submit(manifest=manifest(**V2)).id
    approve(v1, "bob")
    approve(v1, "carol")  # holdings:read and transactions:write need a second approver
    diff = registry.diff(submit(version="2.0.0").id)
    assert diff.removed_scopes == ("holdings:read", "slot:home.banner", "transactions:write")
    assert diff.removed_transaction_types == ("demo.subscribe",)


def test_a_changed_risk_level_or_amount_field_is_listed(
    registry: RegistryService, submit: Submit, approve: Approve, manifest: Manifest
) -> None:
    """A kept type's declared product risk raised, a product added, or its amount field changed between
    releases is spelled out for the reviewer (it decides who may buy and which limit applies)."""
    v1 = submit(manifest=manifest(**V2)).id
    approve(v1, "bob")
    approve(v1, "carol")
    higher = {"demo.subscribe": {"risk_level": "R4", "amount_field": "amount_fen"}}
    raised = {**V2, "transaction_types": higher}
    diff = registry.diff(submit(version="2.0.0", manifest=manifest(**raised)).id)
    assert diff.changed_transaction_types == ("demo.subscribe: risk_level R2 → R4",)
    assert diff.added_transaction_types == diff.removed_transaction_types == ()
    assert not diff.is_empty
    products = {**V2, "transaction_types": {"demo.subscribe": {
        "product_field": "fund", "product_risks": {"F-1": "R2"}, "moves_money": False,
    }}}
    diff = registry.diff(submit(version="2.1.0", manifest=manifest(**products)).id)
    assert diff.changed_transaction_types == (
        "demo.subscribe: amount_field amount_fen → none (moves no money)",
        "demo.subscribe: product F-1 undeclared → R2",
        "demo.subscribe: product_field undeclared → fund",
        "demo.subscribe: risk_level R2 → undeclared",
    )
    paying = {**V2, "transaction_types": {"demo.subscribe": {
        "risk_level": "R2", "amount_field": "amount_fen", "account_fields": ["from_account"],
    }}}
    diff = registry.diff(submit(version="2.2.0", manifest=manifest(**paying)).id)
    assert diff.changed_transaction_types == ("demo.subscribe: account_fields undeclared → from_account",)


def test_diff_needs_a_manifest(registry: RegistryService) -> None:
    """A release with no readable manifest cannot be diffed; an unknown one is not found."""
    bad = registry.submit(
        b"junk", filename="x-1.0.0-py3-none-any.whl", publisher_id="pension-dept", submitted_by="a"
    )
    with pytest.raises(InvalidInput):
        registry.diff(bad.id)
    with pytest.raises(NotFound):
        registry.diff(999)


def _key(kid: str) -> dict[str, str]:
    return {"kty": "EC", "crv": "P-256", "kid": kid, "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}


def test_a_partners_new_signing_keys_and_redirect_uris_are_listed(
    registry: RegistryService, submit: Submit, approve: Approve, manifest: Manifest
) -> None:
    """Who may sign for the backend and where its consent flow may return: each change is shown."""
    def partner(uris: list[str], *kids: str) -> dict[str, Any]:
        oauth = {"redirect_uris": uris, "jwks": {"keys": [_key(k) for k in kids]}}
        return manifest(publisher="fund-partner", kind="partner", oauth=oauth)

    v1 = submit(publisher="fund-partner", manifest=partner(["https://fund.example/a"], "k1"))
    assert v1.state == "in_review", v1.failed_checks
    approve(v1.id)
    v2 = submit(
        version="1.1.0", publisher="fund-partner", manifest=partner(["https://fund.example/b"], "k1", "k2")
    ).id
    diff = registry.diff(v2)
    assert [k.split(" ")[0] for k in diff.added_key_ids] == ["k2"]
    assert diff.removed_key_ids == ()
    assert diff.added_redirect_uris == ("https://fund.example/b",)
    assert diff.removed_redirect_uris == ("https://fund.example/a",)
    assert not diff.is_empty


def test_new_key_material_under_an_old_kid_is_a_new_signer(
    registry: RegistryService, submit: Submit, approve: Approve, manifest: Manifest
) -> None:
    """The diff compares key thumbprints, not kids: a swapped key under kid k1 is shown."""
    def partner(key: dict[str, str]) -> dict[str, Any]:
        return manifest(publisher="fund-partner", kind="partner", oauth={"jwks": {"keys": [key]}})

    v1 = submit(publisher="fund-partner", manifest=partner(_key("k1"))).id
    approve(v1)
    swapped = {**_key("k1"), "x": _key("k1")["y"], "y": _key("k1")["x"]}  # not on the curve: checks fail,
    v2 = submit(version="1.1.0", publisher="fund-partner", manifest=partner(swapped))  # but it is diffed
    diff = registry.diff(v2.id)
    assert [k.split(" ")[0] for k in diff.added_key_ids] == ["k1"]
    assert [k.split(" ")[0] for k in diff.removed_key_ids] == ["k1"]
    assert diff.added_key_ids != diff.removed_key_ids
