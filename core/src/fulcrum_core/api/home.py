"""``GET /v1/home``: every slot of the inventory, filled from the plugins' offers."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from fulcrum_sdk.scopes import slot_scope
from litestar import MediaType, Request, Response, get

from fulcrum_core.api.deps import customer_contexts, plugin_calls
from fulcrum_core.api.frequency_caps import apply_caps
from fulcrum_core.api.input_problems import DATA_UNAVAILABLE_RESPONSE
from fulcrum_core.assembly.common import DegradedPlugin, public_degraded
from fulcrum_core.assembly.defaults import fill_empty_slots
from fulcrum_core.assembly.home import HomeItem, assemble_home, capped_slots
from fulcrum_core.plugins import LoadedPlugin
from fulcrum_core.runtime import Runtime, runtime_of

__all__ = ["ROUTES", "HomeResponse", "home"]

class HomeResponse(msgspec.Struct, frozen=True, kw_only=True):
    """The home page: items per slot id (every slot present), plugins left out, the request id."""

    slots: dict[str, list[HomeItem]]
    degraded: list[DegradedPlugin]
    request_id: str


def _home_plugins(runtime: Runtime) -> tuple[list[LoadedPlugin], dict[str, frozenset[str]]]:
    """The active plugins offering home content that hold a placement scope for some inventory slot,
    and their grants by id.

    Worked out once per plugin-set change (the registry watcher swaps the list), not per request.
    """
    enabled = runtime.plugins.enabled_for("home_slot_offers")
    cached = runtime.extras.get(_HOME_PLUGINS)
    if cached is not None and cached[0] is enabled:
        return cached[1], cached[2]
    placements = frozenset(slot_scope(slot) for slot in runtime.settings.slots)
    chosen = [p for p in enabled if p.granted & placements]
    granted = {p.id: p.granted for p in chosen}
    runtime.extras[_HOME_PLUGINS] = (enabled, chosen, granted)
    return chosen, granted


_HOME_PLUGINS = "home.plugins"


@get(
    "/v1/home", opt={"scopes": ["home:read"]}, tags=["app"], summary="The customer's home page",
    description=(
        "Every slot of the inventory, each a list of items. A slot's items are ordered by the offers' "
        "priority, except that the customer's branch may pin a plugin: its best offer then stands at the "
        "pinned position (last when the slot has fewer items); the shape is the same."
    ),
    responses={503: DATA_UNAVAILABLE_RESPONSE},
)
async def home(request: Request[Any, Any, Any]) -> Response[HomeResponse]:
    """Items for every home-page slot, ranked, capped and filtered for this customer."""
    runtime = runtime_of(request)
    budget_end = asyncio.get_running_loop().time() + runtime.settings.home_budget_ms / 1000
    contexts = await customer_contexts(request, by=budget_end)
    inventory = runtime.settings.slots
    plugins, granted = _home_plugins(runtime)
    calls = await plugin_calls(contexts, plugins)
    # The overall budget caps the plugins' deadline: a slow consent read leaves them less time.
    left_ms = (budget_end - asyncio.get_running_loop().time()) * 1000
    try:
        gathered = await runtime.dispatcher.call_many("home_slot_offers", calls, deadline_ms=left_ms)
    finally:
        contexts.close()  # a context a plugin kept reads nothing after this request
    slots = assemble_home(
        gathered.results, inventory=inventory, granted=granted,
        customer=contexts.customer, now=contexts.now, pins=contexts.pins(gathered.results),
        seen_as=contexts.customer_seen_by,
    )
    if gathered.degraded:
        slots = fill_empty_slots(
            slots, runtime.settings.home_defaults, inventory=inventory, customer=contexts.customer,
            now=contexts.now,
        )
    if any(slots.get(slot) for slot in capped_slots(inventory)):
        slots = await apply_caps(runtime, contexts.customer_ref, contexts.now, slots, budget_end)
    degraded = public_degraded(gathered.degraded)
    page = HomeResponse(slots=slots, degraded=degraded, request_id=contexts.request_id)
    # Encoded here with a prepared encoder (the page holds only msgspec types); the schema still
    # documents HomeResponse.
    return Response(_ENCODE(page), media_type=MediaType.JSON)  # type: ignore[arg-type]


_ENCODE = msgspec.json.Encoder().encode


ROUTES: list[Any] = [home]
