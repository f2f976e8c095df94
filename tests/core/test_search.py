"""Search assembly: query checks, merged stable ranking, pagination."""

from __future__ import annotations

from typing import Any

import pytest
from fulcrum_core.assembly.search import normalize_query, paginate, rank_hits
from fulcrum_core.errors import BadRequest


@pytest.mark.parametrize(("raw", "expected"), [("  养老金  ", "养老金"), ("a", "a"), ("x" * 100, "x" * 100)])
def test_query_is_stripped_and_accepted(raw: str, expected: str) -> None:
    """Surrounding space is stripped; 1 to 100 characters are accepted."""
    assert normalize_query(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [None, "", "   \t ", "x" * 101, " " + "y" * 101 + " ", "\x00", "\x01\x02", "\u200b", "\u3000\u200b"],
)
def test_bad_queries_name_the_q_field(raw: str | None) -> None:
    """Missing, blank, invisible (controls, a zero-width space) or over-long queries are a 400 naming q."""
    with pytest.raises(BadRequest) as info:
        normalize_query(raw)
    assert info.value.field == "q"


def test_hits_are_ranked_by_relevance_with_a_stable_tie_break(kit: Any) -> None:
    """Relevance desc, then plugin id, then key — regardless of the order plugins answered in."""
    hits = {
        "zeta": [kit.hit("z1", relevance=0.5), kit.hit("z0", relevance=0.9)],
        "alpha": [kit.hit("b", relevance=0.5), kit.hit("a", relevance=0.5)],
    }
    ranked = [(i.plugin, i.key) for i in rank_hits(hits)]
    assert ranked == [("zeta", "z0"), ("alpha", "a"), ("alpha", "b"), ("zeta", "z1")]
    assert [(i.plugin, i.key) for i in rank_hits(dict(reversed(hits.items())))] == ranked


def test_duplicate_keys_within_a_plugin_keep_the_first(kit: Any) -> None:
    """One plugin's repeated key appears once; the same key from two plugins appears twice."""
    hits = {"a": [kit.hit("k", relevance=0.2), kit.hit("k", relevance=0.9)], "b": [kit.hit("k")]}
    assert [(i.plugin, i.key, i.relevance) for i in rank_hits(hits)] == [("b", "k", 0.5), ("a", "k", 0.2)]


def test_pages_cover_everything_once(kit: Any) -> None:
    """Walking every page yields each hit exactly once, with the total on each page."""
    items = rank_hits({"p": [kit.hit(f"h{i:02}", relevance=i / 100) for i in range(23)]})
    seen = []
    for page in range(1, 5):
        result = paginate(items, page=page, page_size=7)
        assert result.total == 23
        assert result.page == page
        assert result.page_size == 7
        seen += [i.key for i in result.items]
    assert seen == [i.key for i in items]
    assert len(set(seen)) == 23


def test_page_past_the_end_is_empty(kit: Any) -> None:
    """Asking beyond the last page returns no items, not an error."""
    assert paginate(rank_hits({"p": [kit.hit("a")]}), page=9, page_size=20).items == []


@pytest.mark.parametrize(
    ("page", "size", "field"),
    [(0, 20, "page"), (-3, 20, "page"), (1001, 20, "page"), (10**30, 20, "page"), (1, 0, "page_size"),
     (1, 51, "page_size")],
)
def test_bad_paging_names_the_field(page: int, size: int, field: str) -> None:
    """Out-of-range page or page_size is a 400 naming the field."""
    with pytest.raises(BadRequest) as info:
        paginate([], page=page, page_size=size)
    assert info.value.field == field


def test_a_query_reaches_plugins_composed_and_without_invisible_characters() -> None:
    """NFD and NFC spellings of one word become one string, counted in composed characters; a
    zero-width space inside is dropped and a tab separates words like a space."""
    decomposed = "e\u0301" * 60  # sixty "é" typed with combining accents: 120 code points
    assert normalize_query(decomposed) == "\u00e9" * 60
    assert normalize_query("养\u200b老金") == "养老金"
    assert normalize_query("fund\tfee") == "fund fee"
