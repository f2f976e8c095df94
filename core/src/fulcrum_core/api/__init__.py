"""The HTTP API: one module per resource, each exporting its route handlers or a ``Router``."""

from __future__ import annotations

from collections.abc import Sequence

from litestar.types import ControllerRouterHandler

__all__ = ["routers"]


def routers() -> Sequence[ControllerRouterHandler]:
    """Every route handler of the app, in one list (imported lazily: no import-time wiring)."""
    from fulcrum_core.api import (
        admin,
        consents,
        feeds,
        health,
        home,
        metrics,
        oauth,
        pages,
        plugins,
        problems,
        registry,
        registry_index,
        search,
        transactions,
    )

    return [
        *health.ROUTES,
        *home.ROUTES,
        *search.ROUTES,
        *feeds.ROUTES,
        *pages.ROUTES,
        *plugins.ROUTES,
        *transactions.ROUTES,
        *admin.ROUTES,
        *oauth.ROUTES,
        *consents.ROUTES,
        *metrics.ROUTES,
        *registry.ROUTES,
        *registry_index.ROUTES,
        *problems.ROUTES,
    ]
