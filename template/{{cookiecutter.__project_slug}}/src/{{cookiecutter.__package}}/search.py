"""Search: the plugin's entry when the query names it, and the plans whose names match."""

from __future__ import annotations

from fulcrum_sdk import Action, LocalizedText, PluginContext, SearchHit, hookimpl
from fulcrum_sdk import LocalizedText as T

from {{ cookiecutter.__package }}._about import ENTRY, NAME, PLUGIN_ID
from {{ cookiecutter.__package }}.plans import PLANS, yuan

__all__ = ["search"]


def _matches(query: str, text: LocalizedText) -> bool:
    q = query.casefold()
    return any(t and (q in t.casefold() or t.casefold() in q) for t in (text.zh_CN, text.en))


@hookimpl
async def search(ctx: PluginContext, query: str) -> list[SearchHit]:
    """The entry for the plugin's name or id (relevance 0.9), then each matching plan (0.7)."""
    hits = []
    if _matches(query, NAME) or query.casefold() == PLUGIN_ID:
        hits.append(SearchHit(key="entry", kind="service", title=NAME, action=ENTRY, relevance=0.9))
    hits.extend(
        SearchHit(
            key=f"plan.{plan.id}",
            kind="product",
            title=plan.name,
            subtitle=T(zh_CN=f"{yuan(plan.price_fen)} 起", en=f"from {yuan(plan.price_fen)}"),
            action=Action(uri=plan.uri),
            relevance=0.7,
        )
        for plan in PLANS.values()
        if _matches(query, plan.name)
    )
    return hits
