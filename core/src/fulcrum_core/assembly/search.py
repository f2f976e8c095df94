"""Search: check the query, merge hits from every plugin, rank them stably, and cut one page.

Ranking is by relevance (highest first), ties broken by plugin id then key, so the same hits always
come in the same order and pages never overlap. A plugin's duplicate keys keep the first hit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import msgspec
from fulcrum_sdk._validate import MAX_SEARCH_QUERY, received_search_query
from fulcrum_sdk.models import Action, LocalizedText, SearchHit

from fulcrum_core.errors import BadRequest

__all__ = [
    "MAX_PAGE",
    "MAX_PAGE_SIZE",
    "MAX_QUERY_LENGTH",
    "SearchItem",
    "SearchPage",
    "normalize_query",
    "paginate",
    "rank_hits",
]

MAX_QUERY_LENGTH = MAX_SEARCH_QUERY
MAX_PAGE_SIZE = 50
MAX_PAGE = 1000
"""Pages past this are refused: every plugin answers at most 50 hits, so no result list reaches it."""


class SearchItem(msgspec.Struct, frozen=True, kw_only=True):
    """One search result, with the plugin that found it."""

    plugin: str
    key: str
    kind: Literal["function", "product", "article", "merchant", "service"]
    title: LocalizedText
    subtitle: LocalizedText | None = None
    action: Action
    relevance: float


class SearchPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of ranked results and how many there are in all."""

    items: list[SearchItem]
    total: int
    page: int
    page_size: int


def normalize_query(q: str | None) -> str:
    """The query as plugins get it (:func:`fulcrum_sdk._validate.received_search_query`, which the test
    harness applies too): in NFC, without control or invisible format characters and surrounding
    space; ``BadRequest`` naming ``q`` unless 1–100 characters remain."""
    try:
        return received_search_query(q)
    except ValueError as exc:
        raise BadRequest(str(exc), field="q", code="invalid-query") from None


def rank_hits(hits: Mapping[str, Sequence[SearchHit]]) -> list[SearchItem]:
    """Every plugin's hits merged and ranked: relevance desc, then plugin id, then key."""
    ranked: list[tuple[float, str, str, SearchHit]] = []
    for plugin, plugin_hits in hits.items():
        seen: set[str] = set()
        for hit in plugin_hits:
            if hit.key not in seen:
                seen.add(hit.key)
                ranked.append((-hit.relevance, plugin, hit.key, hit))
    ranked.sort(key=lambda r: r[:3])
    return [
        SearchItem(plugin=plugin, key=hit.key, kind=hit.kind, title=hit.title, subtitle=hit.subtitle,
                   action=hit.action, relevance=hit.relevance)
        for _, plugin, _, hit in ranked
    ]


def paginate(items: Sequence[SearchItem], *, page: int, page_size: int) -> SearchPage:
    """Page ``page`` (from 1) of ``page_size`` items; a page past the end is empty, not an error."""
    if not 1 <= page <= MAX_PAGE:
        raise BadRequest(f"page must be between 1 and {MAX_PAGE}", field="page", code="invalid-page")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise BadRequest(f"page_size must be between 1 and {MAX_PAGE_SIZE}", field="page_size",
                         code="invalid-page")
    start = (page - 1) * page_size
    window = list(items[start : start + page_size])
    return SearchPage(items=window, total=len(items), page=page, page_size=page_size)
