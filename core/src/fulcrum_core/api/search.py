"""``GET /v1/search``: hits from every plugin holding ``search:contribute``, ranked and paginated."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, get
from litestar.params import QueryParameter

from fulcrum_core.api.deps import customer_contexts, plugin_calls
from fulcrum_core.api.input_problems import DATA_UNAVAILABLE_RESPONSE
from fulcrum_core.api.query_text import checked_query
from fulcrum_core.assembly.common import DegradedPlugin, public_degraded
from fulcrum_core.assembly.search import (
    MAX_PAGE,
    MAX_PAGE_SIZE,
    SearchItem,
    normalize_query,
    paginate,
    rank_hits,
)
from fulcrum_core.runtime import runtime_of

__all__ = ["ROUTES", "SearchResponse", "search"]


class SearchResponse(msgspec.Struct, frozen=True, kw_only=True):
    """One page of search results for the stripped query."""

    query: str
    items: list[SearchItem]
    total: int
    page: int
    page_size: int
    degraded: list[DegradedPlugin]
    request_id: str


@get(
    "/v1/search", before_request=checked_query,
    opt={"scopes": ["search:read"]}, tags=["app"], summary="Search everything",
    responses={503: DATA_UNAVAILABLE_RESPONSE},
)
async def search(
    request: Request[Any, Any, Any],
    q: Annotated[str | None, QueryParameter(description="The search text, 1–100 characters.")] = None,
    page: Annotated[int, QueryParameter(ge=1, le=MAX_PAGE, description="Page number, from 1.")] = 1,
    page_size: Annotated[int, QueryParameter(ge=1, le=MAX_PAGE_SIZE, description="Results per page.")] = 20,
) -> SearchResponse:
    """Merged, ranked search hits; a page past the end is empty."""
    query = normalize_query(q)
    runtime = runtime_of(request)
    contexts = await customer_contexts(request)
    plugins = [p for p in runtime.plugins.enabled_for("search") if "search:contribute" in p.granted]
    calls = await plugin_calls(contexts, plugins)
    try:
        gathered = await runtime.dispatcher.call_many("search", calls, query=query)
    finally:
        contexts.close()  # a context a plugin kept reads nothing after this request
    result = paginate(rank_hits(gathered.results), page=page, page_size=page_size)
    return SearchResponse(
        query=query, items=result.items, total=result.total, page=result.page, page_size=result.page_size,
        degraded=public_degraded(gathered.degraded), request_id=contexts.request_id,
    )


ROUTES: list[Any] = [search]
