"""``create_app(settings)``: the one place that wires the host together. No import-time side effects."""

from __future__ import annotations

from collections.abc import Sequence

from fulcrum_sdk.data import DataProvider
from litestar import Litestar, Router
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin

from fulcrum_core.api import routers
from fulcrum_core.auth.middleware import auth_middleware
from fulcrum_core.auth.tokens import TokenService
from fulcrum_core.data.db import Database
from fulcrum_core.data.provider import DemoDataProvider
from fulcrum_core.dispatch.context import ContextFactory
from fulcrum_core.dispatch.dispatcher import Dispatcher
from fulcrum_core.errors import problem_details_plugin
from fulcrum_core.plugins import get_plugin_manager
from fulcrum_core.runtime import Runtime
from fulcrum_core.settings import Settings
from fulcrum_core.transactions.service import TransactionService

__all__ = ["build_runtime", "create_app"]


def build_runtime(
    settings: Settings,
    *,
    provider: DataProvider | None = None,
    extra_plugins: Sequence[object] = (),
    load_entry_points: bool = True,
) -> Runtime:
    """Build the host's parts. Tests pass ``extra_plugins`` (modules or objects with hookimpls and a
    ``MANIFEST`` attribute) and ``load_entry_points=False`` to run exactly the plugins they choose."""
    db = Database(settings.resolved_database_url())
    data = provider if provider is not None else DemoDataProvider.from_seed()
    plugins = get_plugin_manager(settings, extra_plugins=extra_plugins, load_entry_points=load_entry_points)
    dispatcher = Dispatcher(settings)
    contexts = ContextFactory(settings=settings, db=db, provider=data, plugins=plugins)
    tokens = TokenService.from_settings(settings)
    transactions = TransactionService(
        settings=settings, db=db, plugins=plugins, dispatcher=dispatcher, contexts=contexts, provider=data
    )
    return Runtime(
        settings=settings,
        db=db,
        provider=data,
        plugins=plugins,
        dispatcher=dispatcher,
        contexts=contexts,
        tokens=tokens,
        transactions=transactions,
    )


def create_app(settings: Settings, *, runtime: Runtime | None = None, debug: bool = False) -> Litestar:
    """The litestar app for ``settings``; pass a prebuilt ``runtime`` to control its parts."""
    rt = runtime if runtime is not None else build_runtime(settings)
    app = Litestar(
        route_handlers=list(routers()),
        middleware=[auth_middleware()],
        plugins=[problem_details_plugin()],
        openapi_config=OpenAPIConfig(
            title="Fulcrum",
            version="0.1.0",
            path="/schema",
            render_plugins=[SwaggerRenderPlugin()],
            # The schema routes are public; every other route declares its scopes (auth/guards.py).
            openapi_router=Router(
                "/schema", route_handlers=[], include_in_schema=False, opt={"public": True}
            ),
        ),
        on_shutdown=[rt.dispatcher.close, rt.db.dispose],
        debug=debug,
    )
    app.state.runtime = rt
    return app
