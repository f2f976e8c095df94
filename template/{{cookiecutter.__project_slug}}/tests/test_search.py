{%- set c = cookiecutter -%}
"""Search: the plugin answers queries for itself and its plans, and nothing else."""

from __future__ import annotations

import pytest
from fulcrum_sdk.testing import PluginHarness

import {{ c.__package }} as plugin
from {{ c.__package }}._about import NAME, PLUGIN_ID
from {{ c.__package }}.plans import PLANS, yuan


@pytest.mark.parametrize("query", [NAME.zh_CN, PLUGIN_ID])
def test_the_plugin_is_found_by_its_name_and_id(query: str) -> None:
    """Searching the plugin's name or id returns its entry first."""
    hits = PluginHarness(plugin).search(query)
    assert hits
    assert hits[0].key == "entry"


def test_plans_are_found_by_part_of_their_name() -> None:
    """A partial name (套餐) finds every plan, as product hits with a price."""
    hits = PluginHarness(plugin).search("套餐")
    assert {h.key for h in hits if h.kind == "product"} == {f"plan.{p}" for p in PLANS}


def test_unrelated_queries_find_nothing() -> None:
    """A query about something else returns no hit rather than noise."""
    assert PluginHarness(plugin).search("房贷利率") == []


def test_no_hits_without_the_search_scope() -> None:
    """Without ``search:contribute`` the plugin contributes nothing to search."""
    assert PluginHarness(plugin, scopes=()).search(NAME.zh_CN) == []


@pytest.mark.parametrize(
    ("fen", "shown"),
    [(990, "¥9.90"), (0, "¥0.00"), (123_456_789, "¥1,234,567.89"), (-150, "-¥1.50"), (-5, "-¥0.05")],
)
def test_prices_are_shown_as_yuan(fen: int, shown: str) -> None:
    """Amounts in fen display as the app prints them; a negative one (a refund) keeps its sign in front."""
    assert yuan(fen) == shown
