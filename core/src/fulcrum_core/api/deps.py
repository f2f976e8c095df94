"""What the app-facing handlers share: who the customer is, the request id, and plugin contexts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fulcrum_sdk.context import PluginContext
from litestar import Request

from fulcrum_core.auth.principal import Principal
from fulcrum_core.dispatch.context import RequestContexts
from fulcrum_core.errors import Forbidden
from fulcrum_core.observability.logging import new_request_id
from fulcrum_core.plugins import LoadedPlugin
from fulcrum_core.runtime import runtime_of

__all__ = ["current_customer", "plugin_calls", "request_id_of"]


def current_customer(request: Request[Any, Any, Any]) -> str:
    """The bank's customer number behind the request's token; 403 for non-customer tokens or unknown ones."""
    principal = request.scope.get("user")  # what ``request.user`` reads, without its property
    if not isinstance(principal, Principal) or principal.kind != "customer":
        raise Forbidden("this route is for customer tokens only", code="customer.required")
    if runtime_of(request).provider.profile(principal.sub) is None:
        raise Forbidden("the bank has no customer profile for this token's subject", code="customer.unknown")
    return principal.sub


def request_id_of(request: Request[Any, Any, Any]) -> str:
    """The request's id: one set by middleware, a well-formed ``X-Request-ID`` header, or a new one.

    Reads ``scope["state"]`` directly: ``request.state`` builds a ``State`` wrapper on every access.
    """
    state = request.scope.setdefault("state", {})
    found = state.get("request_id")
    if isinstance(found, str) and found:
        return found
    request_id = new_request_id(request.headers.get("x-request-id"))
    state["request_id"] = request_id
    return request_id


async def plugin_calls(
    contexts: RequestContexts, plugins: Sequence[LoadedPlugin]
) -> list[tuple[LoadedPlugin, PluginContext]]:
    """Each plugin this customer gets, with its context.

    The customer's branch configuration picks the plugins first (on for the branch x rollout or
    allow-list x version range; precomputed per change, so this is a lookup and a hash or two);
    when consents must be read (partners), that happens in a thread, one read shared by concurrent
    requests for the same customer.
    """
    plugins = contexts.select(plugins)
    if contexts.needs_io(plugins):
        await contexts.aconsents()
    return [(plugin, contexts.for_plugin(plugin)) for plugin in plugins]
