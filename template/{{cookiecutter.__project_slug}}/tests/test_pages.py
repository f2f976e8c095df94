{%- set c = cookiecutter -%}
{%- set plans = c.search or c.transactions -%}
"""Pages: every deep link the plugin hands out opens a page, and nothing else does."""

from __future__ import annotations

from fulcrum_sdk.testing import PluginHarness

import {{ c.__package }} as plugin
from {{ c.__package }}._about import PLUGIN_ID
{%- if plans %}
from {{ c.__package }}.plans import PLANS
{%- endif %}

PREFIX = f"fulcrum://{PLUGIN_ID}/"


def test_every_link_the_plugin_hands_out_opens_a_page() -> None:
    """Offers, hits and cards link into the plugin; each link is one of its pages."""
    harness = PluginHarness(plugin)
    uris: set[str] = set()
{%- if c.home_slots %}
    uris |= {offer.action.uri for offer in harness.home_slot_offers()}
{%- endif %}
{%- if c.search %}
    uris |= {hit.action.uri for hit in harness.search("套餐")}
{%- endif %}
{%- if c.feed %}
    uris |= {card.action.uri for card in harness.feed_items("life")}
{%- endif %}
    links = {uri for uri in uris if uri.startswith(PREFIX)}
    assert links
    for uri in links:
        assert harness.page(uri.removeprefix(PREFIX)) is not None, uri


def test_the_guide_is_the_same_for_everyone() -> None:
    """The guide page needs no customer data."""
    assert PluginHarness(plugin, persona="retiree").page("guide") == PluginHarness(plugin).page("guide")
{%- if plans %}


def test_home_lists_the_plans_on_sale_with_their_price() -> None:
    """The home page lists each plan with its price and what is left, linking to the plan's page."""
    home = PluginHarness(plugin).page("home")
    assert home is not None
    lines = home.sections[0].lines
    assert [line.label for line in lines] == [plan.name for plan in PLANS.values()]
    assert [line.action.uri if line.action else None for line in lines] == [p.uri for p in PLANS.values()]


def test_a_sold_out_plan_leaves_the_home_page_but_keeps_its_own() -> None:
    """No stock left: gone from the list, and its page says 0 left."""
    harness = PluginHarness(plugin)
    starter = PLANS["starter"]
    harness.storage.add(starter.sold_key, starter.stock)
    home = harness.page("home")
    assert home is not None
    assert starter.name not in [line.label for line in home.sections[0].lines]
    own = harness.page(f"plans/{starter.id}")
    assert own is not None
    assert own.sections[0].lines[0].value is not None
    assert own.sections[0].lines[0].value.en is not None
    assert own.sections[0].lines[0].value.en.endswith("0 left")
{%- endif %}


def test_other_paths_have_no_page() -> None:
    """A path that is not one of the plugin's pages answers None (the app gets a 404)."""
    harness = PluginHarness(plugin)
    for path in ("nowhere", "plans/nope", "home/extra", "Guide"):
        assert harness.page(path) is None
