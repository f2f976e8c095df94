"""``GET /v1/feeds/{column}``: one content column from every plugin holding ``feed:contribute``."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, get
from litestar.params import PathParameter, QueryParameter

from fulcrum_core.api.deps import customer_contexts, plugin_calls
from fulcrum_core.api.input_problems import DATA_UNAVAILABLE_RESPONSE, NOT_FOUND_RESPONSE
from fulcrum_core.api.query_text import checked_query
from fulcrum_core.assembly.common import DegradedPlugin, public_degraded
from fulcrum_core.assembly.feeds import MAX_LIMIT, FeedCard, decode_cursor, merge_feed, page_feed
from fulcrum_core.errors import NotFound
from fulcrum_core.parameter_problems import echoed
from fulcrum_core.runtime import runtime_of

__all__ = ["ROUTES", "FeedResponse", "feed"]


class FeedResponse(msgspec.Struct, frozen=True, kw_only=True):
    """One page of a feed column; pass ``next_cursor`` back as ``cursor`` for the next page."""

    column: str
    items: list[FeedCard]
    next_cursor: str | None
    degraded: list[DegradedPlugin]
    request_id: str


@get(
    "/v1/feeds/{column:str}", before_request=checked_query,
    opt={"scopes": ["feeds:read"]}, tags=["app"], summary="A content feed column",
    responses={404: NOT_FOUND_RESPONSE, 503: DATA_UNAVAILABLE_RESPONSE},
)
async def feed(
    request: Request[Any, Any, Any],
    column: Annotated[str, PathParameter(description="The column id: wealth, education, retirement, life…")],
    cursor: Annotated[str | None, QueryParameter(description="The next_cursor of the previous page.")] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT, description="Cards per page.")] = 20,
) -> FeedResponse:
    """Cards ordered by priority, then recency; cursor-paginated."""
    runtime = runtime_of(request)
    if column not in runtime.settings.feed_columns:
        known = ", ".join(runtime.settings.feed_columns)
        raise NotFound(f"there is no feed column {echoed(column)}; known: {known}", field="column",
                       code="feed.unknown-column")
    after = decode_cursor(column, cursor) if cursor else None
    contexts = await customer_contexts(request)
    plugins = [p for p in runtime.plugins.enabled_for("feed_items") if "feed:contribute" in p.granted]
    calls = await plugin_calls(contexts, plugins)
    try:
        gathered = await runtime.dispatcher.call_many("feed_items", calls, column=column)
    finally:
        contexts.close()  # a context a plugin kept reads nothing after this request
    entries = merge_feed(
        gathered.results, column=column, customer=contexts.customer, seen_as=contexts.customer_seen_by
    )
    result = page_feed(entries, column=column, after=after, limit=limit)
    return FeedResponse(
        column=column, items=result.items, next_cursor=result.next_cursor,
        degraded=public_degraded(gathered.degraded), request_id=contexts.request_id,
    )


ROUTES: list[Any] = [feed]
