"""``GET /metrics``: the Prometheus scrape endpoint, for tokens holding ``platform:read``.

Metrics name every plugin and its failure rates, which is operational detail a customer should not
see; scrapers authenticate with a staff token like any other operations client (Prometheus sends it
with ``authorization: {credentials_file: …}``) instead of the route relying on network placement.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get

from fulcrum_core.observability.metrics import CONTENT_TYPE
from fulcrum_core.observability.setup import scrape
from fulcrum_core.observability.storage_metrics import storage_metrics
from fulcrum_core.runtime import runtime_of

__all__ = ["ROUTES", "metrics"]


@get(
    "/metrics", opt={"scopes": ["platform:read"]}, tags=["operations"], summary="Prometheus metrics",
    media_type=CONTENT_TYPE,
)
async def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Plugin call latency histograms, outcome counters and breaker states, in the text format; and each
    plugin's storage use against its quota."""
    runtime = runtime_of(request)
    body = await scrape(request.app) + await storage_metrics(runtime.db, runtime.settings)
    return Response(body, media_type=CONTENT_TYPE)


ROUTES: list[Any] = [metrics]
