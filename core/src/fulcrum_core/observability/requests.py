"""The app's HTTP requests in ``/metrics``: how many by route, method and status, and how long they took.

Counted at the application's entry, outside everything litestar runs for a request: a 404 or 405 is
answered before any middleware, and the refusals authentication and the rate limit raise (401, 403,
429) are sent by litestar's exception handling outside the middleware stack, so only there is every
response seen. A request lasts from the app receiving it to its last body message sent.

``route`` is the template of the route litestar matched (``scope["path_template"]``, set by its
router: ``/v1/pages/{plugin}/{path}``), never the path, whose values are the clients' to choose;
a path no route matches (404, and 405 for a method its route lacks) is ``unmatched``. A method other
than HTTP's own is ``other``, for the same reason. A request that ended without a response started
counts as 500, what the server then answers.

``/metrics``, ``/healthz`` and ``/readyz`` are not counted: they are the platform's own traffic, at the
rate its scraper and probes choose, which Prometheus (its own ``up`` and scrape durations) and the
orchestrator already watch; a ``/readyz`` 503 is a worker saying it is not ready, not a failed request,
and counting it would trip an alert on the 5xx share while a worker drains.
"""

from __future__ import annotations

from time import perf_counter
from typing import Any

from litestar import Litestar
from litestar.types import Message

from fulcrum_core.observability.metrics import Metrics

__all__ = ["UNCOUNTED", "UNMATCHED", "CountsRequests"]

UNMATCHED = "unmatched"
"""The ``route`` of a request no route matched."""

UNCOUNTED = frozenset({"/metrics", "/healthz", "/readyz"})
"""Route templates whose requests are not counted (see the module docstring)."""

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class CountsRequests(Litestar):
    """litestar's application, counting every HTTP request it answers in :attr:`request_metrics`
    (none: not counted)."""

    request_metrics: Metrics | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        # All in this one frame: every frame between the server and the handler is passed through
        # again each time the request waits and resumes.
        metrics = self.request_metrics
        if metrics is None or scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        start = perf_counter()
        status = 500

        async def sent(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await super().__call__(scope, receive, sent)
        finally:
            route: str = scope.get("path_template", UNMATCHED)
            if route not in UNCOUNTED:
                method = scope["method"]
                metrics.observe_request(
                    route, method if method in _METHODS else "other", status, perf_counter() - start
                )
