{%- set c = cookiecutter -%}
"""Feeds: a guide in the life column, nothing in the others."""

from __future__ import annotations

import pytest
from fulcrum_sdk.models import FEED_COLUMNS
from fulcrum_sdk.testing import PluginHarness

import {{ c.__package }} as plugin


def test_the_life_column_gets_the_guide() -> None:
    """The life column carries one valid article with zh-CN and English titles."""
    (item,) = PluginHarness(plugin).feed_items("life")
    assert item.column == "life"
    assert item.kind == "article"
    assert item.title.zh_CN
    assert item.title.en


@pytest.mark.parametrize("column", [col for col in FEED_COLUMNS if col != "life"])
def test_other_columns_get_nothing(column: str) -> None:
    """Columns the plugin has nothing for receive an empty list."""
    assert PluginHarness(plugin).feed_items(column) == []


def test_no_items_without_the_feed_scope() -> None:
    """Without ``feed:contribute`` the plugin contributes nothing to feeds."""
    assert PluginHarness(plugin, scopes=()).feed_items("life") == []
