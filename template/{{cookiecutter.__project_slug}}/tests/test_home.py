{%- set c = cookiecutter -%}
"""Home-page offers: what each customer sees, with and without the optional city scope."""

from __future__ import annotations

import pytest
{%- if c.publisher_kind == "partner" %}
from fulcrum_sdk.errors import DataUnavailable
{%- endif %}
from fulcrum_sdk.testing import PERSONAS, PluginHarness

import {{ c.__package }} as plugin


@pytest.mark.parametrize("persona", sorted(PERSONAS))
def test_every_persona_gets_an_entry_icon_and_a_banner(persona: str) -> None:
    """Each synthetic customer gets one kingkong entry and one banner, all valid SDK offers."""
    offers = PluginHarness(plugin, persona=persona).home_slot_offers()
    assert sorted(o.slot for o in offers) == ["home.banner/v1", "home.kingkong/v1"]
    assert all(o.title.zh_CN and o.action.uri.startswith("fulcrum://") for o in offers)


def test_banner_names_the_city_when_the_optional_scope_is_granted() -> None:
    """With ``location:city`` granted (and consented to), the banner names the customer's city."""
    harness = PluginHarness(plugin, persona="young_professional")
    city = harness.record.city
    assert city is not None
    granted = PluginHarness(plugin, persona="young_professional", scopes=harness.scopes | {"location:city"})
    banner = next(o for o in granted.home_slot_offers() if o.slot == "home.banner/v1")
    assert city.name.zh_CN in banner.title.zh_CN


def test_banner_is_generic_without_the_city_scope() -> None:
    """Without ``location:city`` the plugin asks nothing it was not granted and shows generic text."""
    harness = PluginHarness(plugin, persona="young_professional")
    assert "location:city" not in harness.scopes
    city = harness.record.city
    banner = next(o for o in harness.home_slot_offers() if o.slot == "home.banner/v1")
    assert city is None or city.name.zh_CN not in banner.title.zh_CN


def test_banner_is_generic_without_the_customers_consent() -> None:
    """A granted data scope the customer has not consented to (partners) is not used either."""
    harness = PluginHarness(plugin, persona="young_professional", consented=())
    granted = PluginHarness(
        plugin, persona="young_professional", scopes=harness.scopes | {"location:city"}, consented=()
    )
    offers = granted.home_slot_offers()
    assert len(offers) == 2
{%- if c.publisher_kind == "partner" %}
    city = harness.record.city
    banner = next(o for o in offers if o.slot == "home.banner/v1")
    assert city is None or city.name.zh_CN not in banner.title.zh_CN
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
