"""``GET /v1/home``: every slot of the inventory, filled from the plugins' offers."""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import datetime, timedelta
from typing import Any

import anyio
import anyio.to_thread
import msgspec
from fulcrum_sdk.scopes import slot_scope
from litestar import MediaType, Request, Response, get

from fulcrum_core.api.deps import customer_contexts, plugin_calls
from fulcrum_core.assembly.common import DegradedPlugin, public_degraded
from fulcrum_core.assembly.defaults import fill_empty_slots
from fulcrum_core.assembly.home import HomeItem, apply_frequency_caps, assemble_home, capped_slots
from fulcrum_core.data.impressions import ImpressionStore
from fulcrum_core.dispatch.context import RequestContexts
from fulcrum_core.plugins import LoadedPlugin
from fulcrum_core.runtime import Runtime, runtime_of

__all__ = ["ROUTES", "HomeResponse", "home"]

log = logging.getLogger("fulcrum.api")


class HomeResponse(msgspec.Struct, frozen=True, kw_only=True):
    """The home page: items per slot id (every slot present), plugins left out, the request id."""

    slots: dict[str, list[HomeItem]]
    degraded: list[DegradedPlugin]
    request_id: str


def _cap_and_record(
    runtime: Runtime, customer_ref: str, slots: dict[str, list[HomeItem]], now: datetime,
    given_up: threading.Event,
) -> dict[str, list[HomeItem]]:
    """Apply per-customer frequency caps and record what capped slots show (runs in a worker thread).

    Records nothing once ``given_up`` is set: the page went out with the capped slots empty.
    """
    capped = {s: c for s, c in capped_slots(runtime.settings.slots).items() if slots.get(s)}
    if not capped:
        return slots
    in_flight = _impression_threads(runtime)
    if not in_flight.acquire(blocking=False):
        # Every place is held by a thread still waiting for the store: do not start another.
        return _without_capped(slots, runtime)
    store = ImpressionStore(runtime.db)
    try:
        shown = {s: store.count_since(customer_ref, s, now - timedelta(hours=c.frequency_window_hours))
                 for s, c in capped.items()}
        slots = apply_frequency_caps(slots, shown, runtime.settings.slots)
        for slot in capped:
            for item in slots[slot]:
                if given_up.is_set():
                    return slots
                store.record(customer_ref, slot, item.plugin, item.key, now)
    except Exception:
        # Without the impression store a cap cannot be honoured: show nothing in capped slots.
        log.exception("impression store unavailable; capped slots left empty")
        slots = _without_capped(slots, runtime)
    finally:
        in_flight.release()
    return slots


def _impression_threads(runtime: Runtime) -> threading.BoundedSemaphore:
    """Places for frequency-cap threads in flight, hung ones included: a store that hangs ties up at
    most ``_IMPRESSION_THREADS`` threads; past that, capped slots go out empty at once."""
    found = runtime.extras.get(_IMPRESSIONS_IN_FLIGHT)
    if found is None:
        places = threading.BoundedSemaphore(_IMPRESSION_THREADS)
        found = runtime.extras.setdefault(_IMPRESSIONS_IN_FLIGHT, places)  # atomic: one wins
    return found  # type: ignore[no-any-return]


_IMPRESSIONS_IN_FLIGHT = "home.impression-threads"
_IMPRESSION_THREADS = 16


def _without_capped(slots: dict[str, list[HomeItem]], runtime: Runtime) -> dict[str, list[HomeItem]]:
    return {**slots, **{s: [] for s in capped_slots(runtime.settings.slots)}}


async def _capped(
    runtime: Runtime, contexts: RequestContexts, slots: dict[str, list[HomeItem]], budget_end: float
) -> dict[str, list[HomeItem]]:
    """:func:`_cap_and_record` in a worker thread, within what is left of the page's budget.

    When the impression store does not answer by then the capped slots go out empty (a cap that
    cannot be checked is not honoured by guessing), and the thread records nothing more.
    """
    given_up = threading.Event()
    with anyio.CancelScope(deadline=budget_end):
        return await anyio.to_thread.run_sync(
            _cap_and_record, runtime, contexts.customer_ref, slots, contexts.now, given_up,
            abandon_on_cancel=True,
        )
    given_up.set()
    log.warning("impression store did not answer within the home budget; capped slots left empty")
    return _without_capped(slots, runtime)


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


@get("/v1/home", opt={"scopes": ["home:read"]}, tags=["app"], summary="The customer's home page")
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
    gathered = await runtime.dispatcher.call_many("home_slot_offers", calls, deadline_ms=left_ms)
    slots = assemble_home(
        gathered.results, inventory=inventory, granted=granted,
        customer=contexts.customer, now=contexts.now, pins=contexts.pins(gathered.results),
    )
    if gathered.degraded:
        slots = fill_empty_slots(
            slots, runtime.settings.home_defaults, inventory=inventory, customer=contexts.customer,
            now=contexts.now,
        )
    if any(slots.get(slot) for slot in capped_slots(inventory)):
        slots = await _capped(runtime, contexts, slots, budget_end)
    degraded = public_degraded(gathered.degraded)
    page = HomeResponse(slots=slots, degraded=degraded, request_id=contexts.request_id)
    # Encoded here with a prepared encoder (the page holds only msgspec types); the schema still
    # documents HomeResponse.
    return Response(_ENCODE(page), media_type=MediaType.JSON)  # type: ignore[arg-type]


_ENCODE = msgspec.json.Encoder().encode


ROUTES: list[Any] = [home]
