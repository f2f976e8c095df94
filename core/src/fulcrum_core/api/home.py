"""``GET /v1/home``: every slot of the inventory, filled from the plugins' offers."""

from __future__ import annotations

import asyncio
from typing import Any, NamedTuple

import msgspec
from fulcrum_sdk.models import SlotOffer
from fulcrum_sdk.scopes import slot_scope
from litestar import Request, Response, get

from fulcrum_core.api.deps import customer_contexts, plugin_calls
from fulcrum_core.api.encoded import EncodedJSON
from fulcrum_core.api.frequency_caps import apply_caps
from fulcrum_core.api.input_problems import DATA_UNAVAILABLE_RESPONSE
from fulcrum_core.assembly.common import DegradedPlugin, public_degraded
from fulcrum_core.assembly.defaults import fill_empty_slots
from fulcrum_core.assembly.home import HomeItem, assemble_home, capped_slots
from fulcrum_core.campaigns import CAMPAIGNS, HOOK, Waiting, campaigns_of, collect
from fulcrum_core.plugins import LoadedPlugin
from fulcrum_core.runtime import Runtime, runtime_of

__all__ = ["ROUTES", "HomeResponse", "home"]

class HomeResponse(msgspec.Struct, frozen=True, kw_only=True):
    """The home page: items per slot id (every slot present), plugins left out, the request id."""

    slots: dict[str, list[HomeItem]]
    degraded: list[DegradedPlugin]
    request_id: str


class _HomePlugins(NamedTuple):
    """The active plugins with a placement scope for some inventory slot, by home hook, and grants."""

    offering: list[LoadedPlugin]  # home_slot_offers: called per customer
    campaigning: list[LoadedPlugin]  # home_slot_campaigns: called per audience, kept by the store
    granted: dict[str, frozenset[str]]
    # Partners among ``campaigning`` that may see the segment and branch (if the customer consents).
    consent_bound: list[LoadedPlugin]


def _home_plugins(runtime: Runtime) -> _HomePlugins:
    """The home page's plugins, worked out once per plugin-set change (the registry watcher swaps the
    lists), not per request."""
    enabled = runtime.plugins.enabled_for("home_slot_offers")
    campaigns = runtime.plugins.enabled_for(HOOK)
    cached = runtime.extras.get(_HOME_PLUGINS)
    if cached is not None and cached[0] is enabled and cached[1] is campaigns:
        chosen: _HomePlugins = cached[2]
        return chosen
    placements = frozenset(slot_scope(slot) for slot in runtime.settings.slots)
    offering = [p for p in enabled if p.granted & placements]
    campaigning = [p for p in campaigns if p.granted & placements]
    granted = {p.id: p.granted for p in (*offering, *campaigning)}
    bound = [p for p in campaigning if p.kind == "partner" and "profile:basic" in p.granted]
    chosen = _HomePlugins(offering, campaigning, granted, bound)
    if campaigns or CAMPAIGNS in runtime.extras:
        # A plugin switched off (suspended, quarantined, its grant changed) loses what was held for it.
        campaigns_of(runtime).retain(campaigning)
    runtime.extras[_HOME_PLUGINS] = (enabled, campaigns, chosen)
    return chosen


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
    contexts = await customer_contexts(request, by=budget_end, runtime=runtime)
    inventory = runtime.settings.slots
    chosen = _home_plugins(runtime)
    campaigns: dict[str, tuple[SlotOffer, ...]] = {}
    waiting: Waiting = []
    if chosen.campaigning:
        # Held offers now; a miss starts (or joins) its call here, so it runs alongside the page's calls.
        campaigns, waiting = campaigns_of(runtime).for_page(contexts.select(chosen.campaigning), contexts)
    calls = await plugin_calls(contexts, chosen.offering)
    if chosen.consent_bound and contexts.needs_io(contexts.select(chosen.consent_bound)):
        await contexts.aconsents(until=contexts.data_until)  # a partner's targeting needs its view
    # The overall budget caps the plugins' deadline: a slow consent read leaves them less time.
    loop = asyncio.get_running_loop()
    left_ms = (budget_end - loop.time()) * 1000
    # Campaign misses get the page's plugin deadline, counted from now: the calls run meanwhile.
    campaigns_by = loop.time() + min(left_ms, runtime.dispatcher.deadline_ms(HOOK)) / 1000
    try:
        gathered = await runtime.dispatcher.call_many("home_slot_offers", calls, deadline_ms=left_ms)
        if waiting:
            gathered.degraded += await collect(waiting, campaigns, campaigns_by)
    finally:
        contexts.close()  # a context a plugin kept reads nothing after this request
    offers = gathered.results
    slots = assemble_home(
        offers, inventory=inventory, granted=chosen.granted,
        customer=contexts.customer, now=contexts.now,
        # Without a branch layer no plugin is pinned: the plugin ids are not gathered for nothing.
        pins=contexts.pins((*offers, *campaigns) if campaigns else offers) if contexts.branch_view else None,
        seen_as=contexts.customer_seen_by, campaigns=campaigns,
    )
    if gathered.degraded:
        slots = fill_empty_slots(
            slots, runtime.settings.home_defaults, inventory=inventory, customer=contexts.customer,
            now=contexts.now,
        )
    for slot in capped_slots(inventory):  # a loop, not any() over a generator: asked on every page
        if slots.get(slot):
            slots = await apply_caps(runtime, contexts.customer_ref, contexts.now, slots, budget_end)
            break
    degraded = public_degraded(gathered.degraded)
    page = HomeResponse(slots=slots, degraded=degraded, request_id=contexts.request_id)
    # Encoded here with a prepared encoder (the page holds only msgspec types) and handed on as it is;
    # the schema still documents HomeResponse.
    return EncodedJSON(_ENCODE(page))  # type: ignore[return-value]


_ENCODE = msgspec.json.Encoder().encode


ROUTES: list[Any] = [home]
