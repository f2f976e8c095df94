{%- set c = cookiecutter -%}
"""Home-page offers: what each customer sees, with and without the optional city scope, and the
campaigns the host computes once for everyone and filters per customer."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

import pytest
{%- if c.publisher_kind == "partner" %}
from fulcrum_sdk.errors import DataUnavailable
{%- endif %}
from fulcrum_sdk.testing import PERSONAS, PluginHarness

import {{ c.__package }} as plugin
from {{ c.__package }}.home import CAMPAIGN_SEGMENT


@pytest.mark.parametrize("persona", sorted(PERSONAS))
def test_every_persona_gets_an_entry_icon_and_a_banner(persona: str) -> None:
    """Each synthetic customer gets one kingkong entry and one banner, all valid SDK offers."""
    offers = PluginHarness(plugin, persona=persona).home_slot_offers()
    assert sorted(o.slot for o in offers) == ["home.banner/v1", "home.kingkong/v1"]
    assert all(o.title.zh_CN and o.action.uri.startswith("fulcrum://") for o in offers)


def _banner_title(harness: PluginHarness) -> str:
    """The zh-CN title of the banner ``home_slot_offers`` gives the harness's customer."""
    return next(o for o in harness.home_slot_offers() if o.slot == "home.banner/v1").title.zh_CN


def _generic_titles(scopes: Iterable[str] | None = None, consented: Iterable[str] | None = None) -> set[str]:
    """The banner titles customers of every city get with these grants: one, when none names a city.

    Compared across cities rather than searched for the city's name, which the plugin's own name
    may well contain (深圳惠民).
    """
    cities = {p.city.code: name for name, p in sorted(PERSONAS.items()) if p.city is not None}
    assert len(cities) > 1
    return {
        _banner_title(PluginHarness(plugin, persona=name, scopes=scopes, consented=consented))
        for name in cities.values()
    }


def test_banner_names_the_city_when_the_optional_scope_is_granted() -> None:
    """With ``location:city`` granted (and consented to), the banner names the customer's city."""
    harness = PluginHarness(plugin, persona="young_professional")
    city = harness.record.city
    assert city is not None
    granted = PluginHarness(plugin, persona="young_professional", scopes=harness.scopes | {"location:city"})
    assert city.name.zh_CN in _banner_title(granted)
    assert _banner_title(granted) != _banner_title(harness)


def test_banner_is_generic_without_the_city_scope() -> None:
    """Without ``location:city`` the plugin asks nothing it was not granted and shows generic text."""
    harness = PluginHarness(plugin, persona="young_professional")
    assert "location:city" not in harness.scopes
    assert _generic_titles() == {_banner_title(harness)}


def test_banner_is_generic_without_the_customers_consent() -> None:
    """A granted data scope the customer has not consented to (partners) is not used either."""
    harness = PluginHarness(plugin, persona="young_professional", consented=())
    granted = PluginHarness(
        plugin, persona="young_professional", scopes=harness.scopes | {"location:city"}, consented=()
    )
    offers = granted.home_slot_offers()
    assert len(offers) == 2
{%- if c.publisher_kind == "partner" %}
    assert _generic_titles(scopes=granted.scopes, consented=()) == {_banner_title(harness)}
{%- endif %}


{%- if c.publisher_kind == "partner" %}


def test_nothing_is_shown_while_the_customers_consents_are_unknown() -> None:
    """When the host could not read the consents, the banner is not drawn as if there were none:
    ``allows`` raises ``DataUnavailable`` and the host leaves the plugin out of that page."""
    harness = PluginHarness(plugin, persona="young_professional")
    unknown = PluginHarness(
        plugin, persona="young_professional", scopes=harness.scopes | {"location:city"}, consents_unknown=True
    )
    with pytest.raises(DataUnavailable):
        unknown.home_slot_offers()
{%- endif %}


def test_offers_are_dropped_without_the_slot_scopes() -> None:
    """A plugin granted no placement scope shows nothing on the home page."""
    assert PluginHarness(plugin, scopes=()).home_slot_offers() == []


def test_campaigns_run_for_the_month_they_are_computed_in() -> None:
    """Both campaign banners are valid from the first of the month to the next, Beijing time: on the
    evening of 31 December (UTC) it is already January in Beijing."""
    harness = PluginHarness(plugin, now=datetime(2026, 12, 31, 17, 0, tzinfo=UTC))
    campaigns = harness.home_slot_campaigns()
    assert [o.slot for o in campaigns] == ["home.banner/v1", "home.banner/v1"]
    assert {(o.valid_from, o.valid_until) for o in campaigns} == {
        (datetime(2026, 12, 31, 16, 0, tzinfo=UTC), datetime(2027, 1, 31, 16, 0, tzinfo=UTC))
    }
    assert {o.key for o in campaigns} == {"month-2027-01", f"{CAMPAIGN_SEGMENT}-2027-01"}


def test_the_segment_campaign_is_shown_only_inside_its_segment() -> None:
    """With ``profile:basic`` granted, the host shows the segment's banner to an affluent customer and
    filters it out for a mass one; the month's banner reaches both."""
    scopes = PluginHarness(plugin).scopes | {"profile:basic"}
    inside = PluginHarness(plugin, persona="affluent", scopes=scopes)
    outside = PluginHarness(plugin, persona="young_professional", scopes=scopes)
    assert inside.record.profile.segment == CAMPAIGN_SEGMENT != outside.record.profile.segment
    shown_inside = {o.key.split("-")[0] for o in inside.shown_offers() if o.slot == "home.banner/v1"}
    shown_outside = {o.key.split("-")[0] for o in outside.shown_offers() if o.slot == "home.banner/v1"}
    assert shown_inside == {"launch", "month", CAMPAIGN_SEGMENT}
    assert shown_outside == {"launch", "month"}
    assert len(outside.home_slot_campaigns()) == 2  # offered to everyone; the host's targeting drops it


def test_the_segment_campaign_reaches_nobody_without_profile_basic() -> None:
    """Without ``profile:basic`` the host sees no segment, so even an affluent customer gets only the
    banners meant for everyone."""
    harness = PluginHarness(plugin, persona="affluent")
    assert "profile:basic" not in harness.scopes
    banners = {o.key.split("-")[0] for o in harness.shown_offers() if o.slot == "home.banner/v1"}
    assert banners == {"launch", "month"}
{%- if c.publisher_kind == "partner" %}


def test_the_segment_campaign_needs_the_customers_consent() -> None:
    """A partner granted ``profile:basic`` still sees no segment for a customer who has not consented."""
    scopes = PluginHarness(plugin).scopes | {"profile:basic"}
    harness = PluginHarness(plugin, persona="affluent", scopes=scopes, consented=())
    banners = {o.key.split("-")[0] for o in harness.shown_offers() if o.slot == "home.banner/v1"}
    assert banners == {"launch", "month"}
{%- endif %}


def test_campaigns_are_dropped_without_the_banner_scope() -> None:
    """Campaign banners need ``slot:home.banner`` like any other banner."""
    assert PluginHarness(plugin, scopes=()).home_slot_campaigns() == []
