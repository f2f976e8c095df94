"""The running host's parts, built once by ``create_app`` and kept in ``app.state.runtime``.

Route handlers reach everything through this one object (``runtime_of(request)``), so tests can
build a host with their own settings, database, data provider and plugins.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fulcrum_sdk.data import DataProvider
    from litestar.connection import ASGIConnection

    from fulcrum_core.auth.tokens import TokenService
    from fulcrum_core.data.db import Database
    from fulcrum_core.dispatch.context import ContextFactory
    from fulcrum_core.dispatch.dispatcher import Dispatcher
    from fulcrum_core.plugins import PluginSet
    from fulcrum_core.settings import Settings
    from fulcrum_core.transactions.service import TransactionService

__all__ = ["Runtime", "runtime_of"]


@dataclass
class Runtime:
    """The host's parts; one per app."""

    settings: Settings
    db: Database
    provider: DataProvider
    plugins: PluginSet
    dispatcher: Dispatcher
    contexts: ContextFactory
    tokens: TokenService
    transactions: TransactionService
    extras: dict[str, Any] = field(default_factory=dict)


def runtime_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Runtime:
    """The ``Runtime`` of the app serving ``connection``."""
    runtime: Runtime = connection.app.state["runtime"]  # item access: the attribute form is slower
    return runtime
