"""A partner plugin sees the least: pseudonymous ids, no holdings or balances, the city only with consent."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fulcrum_merchant_promo.redeem import REDEEM_COUPON
from fulcrum_sdk import ScopeDenied, TransactionRefused
from fulcrum_sdk.testing import PERSONAS, PluginHarness

MakeHarness = Callable[..., PluginHarness]
NOT_LOCATION = {"profile:basic"}


def test_the_manifest_never_asks_for_holdings_or_balances(all_scopes: frozenset[str]) -> None:
    """What a partner does not request can never be granted to it."""
    assert all_scopes.isdisjoint({"holdings:read", "accounts:read", "pension:read", "profile:risk"})


def test_holdings_and_accounts_are_refused_with_the_default_grant(make_harness: MakeHarness) -> None:
    """With everything the plugin asked for granted, holdings and balances still raise ScopeDenied."""
    data = make_harness().context().data
    with pytest.raises(ScopeDenied, match="holdings:read") as holdings:
        data.holdings()
    with pytest.raises(ScopeDenied, match="accounts:read"):
        data.accounts()
    assert holdings.value.reason == "not granted"


def test_holdings_need_consent_even_if_granted(make_harness: MakeHarness, all_scopes: frozenset[str]) -> None:
    """Even a mistaken grant of ``holdings:read`` is useless without the customer's live consent."""
    harness = make_harness(
        scopes=all_scopes | {"holdings:read", "accounts:read"}, consented={"location:city"}
    )
    with pytest.raises(ScopeDenied, match="holdings:read") as denied:
        harness.context().data.holdings()
    assert denied.value.reason == "no live consent"
    with pytest.raises(ScopeDenied, match="accounts:read"):
        harness.context().data.accounts()


def test_the_customer_id_is_pseudonymous(make_harness: MakeHarness) -> None:
    """The partner never sees the bank's customer id."""
    ctx = make_harness().context()
    assert ctx.customer.id != PERSONAS["young_professional"].id


def test_without_consent_the_city_is_denied(make_harness: MakeHarness) -> None:
    """No consent for ``location:city``: the accessor raises and ``allows`` says no."""
    data = make_harness(consented=NOT_LOCATION).context().data
    assert not data.allows("location:city")
    with pytest.raises(ScopeDenied, match="location:city"):
        data.city()


def test_without_consent_the_plugin_shows_nothing(make_harness: MakeHarness) -> None:
    """Without the city the plugin offers no banner, hit or card rather than guessing a city."""
    harness = make_harness(consented=NOT_LOCATION)
    assert harness.home_slot_offers() == []
    assert harness.search("茶饮") == []
    assert harness.feed_items("life") == []


def test_without_consent_redeeming_asks_for_it(make_harness: MakeHarness) -> None:
    """A redemption without the city is refused with a message that says how to allow it."""
    with pytest.raises(TransactionRefused) as refused:
        make_harness(consented=NOT_LOCATION).execute(REDEEM_COUPON, {"coupon_id": "SZ-TEA-10"})
    assert (refused.value.code, refused.value.field) == ("merchant.city_unknown", None)
    assert "授权" in refused.value.message.zh_CN


def test_without_profile_consent_the_order_is_neutral(make_harness: MakeHarness) -> None:
    """The optional segment nudge applies only with ``profile:basic`` consented."""
    with_profile = {o.key: o.priority for o in make_harness("business_owner").feed_items("life")}
    neutral = {
        o.key: o.priority
        for o in make_harness("business_owner", consented={"location:city"}).feed_items("life")
    }
    assert with_profile["coupon-SH-NOODLE-15"] == neutral["coupon-SH-NOODLE-15"] + 100
    assert with_profile["coupon-SH-CAFE-12"] == neutral["coupon-SH-CAFE-12"]
