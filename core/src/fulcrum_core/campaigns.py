"""Each worker's store of the plugins' audience-level home offers (``home_slot_campaigns``).

A plugin's campaigns are the same for everyone it is on for, so the host asks for them rarely and
every page only filters them for its customer. An entry per loaded plugin (by identity: a new release
or a new grant is a new plugin) and effective settings holds the validated offers, served for
``campaign_ttl_ms`` from the start of the call that fetched them, never longer. A hit past the
entry's refresh point (fixed per plugin between 60 % and 90 % of the TTL, as for the storage and
consent caches) is served and starts one background refresh; concurrent misses share one call. A call
for one of a plugin's settings starts those for all its others (other branches'), so none tells which
branch's customer opened the page.
Every call goes through the dispatcher (breaker, bulkhead, the home deadline, validation, metrics,
logs) with an :class:`~fulcrum_sdk.context.AudienceContext`, which holds nothing about a customer.

A failed refresh keeps the entry until it lapses and is retried after :data:`RETRY_AFTER` of the TTL;
once it lapses, pages list the plugin as degraded until a call succeeds (its breaker then decides
how often it is tried). With ``campaign_ttl_ms = 0`` nothing is kept: every page calls the plugin.
When the running plugins change, the home page has the store forget every other plugin's entries
(:meth:`CampaignStore.retain`): a plugin suspended and reinstated is asked again, never shown what it
offered before.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Final, NamedTuple, Protocol, TypeGuard

from fulcrum_sdk.context import AudienceContext
from fulcrum_sdk.models import SlotOffer

from fulcrum_core.data.storage import refresh_fraction
from fulcrum_core.dispatch.clock import wait_until
from fulcrum_core.dispatch.dispatcher import Dispatcher
from fulcrum_core.dispatch.leftovers import host_task
from fulcrum_core.dispatch.results import Degraded
from fulcrum_core.observability.logging import REQUEST_ID, new_request_id
from fulcrum_core.plugins import LoadedPlugin
from fulcrum_core.runtime import Runtime

__all__ = [
    "CAMPAIGNS", "HOOK", "RETRY_AFTER", "TOGETHER", "CampaignStore", "Fetched", "PageRequest", "Waiting",
    "campaigns_of", "collect",
]

log = logging.getLogger("fulcrum.campaigns")

HOOK: Final = "home_slot_campaigns"
RETRY_AFTER: Final = 0.05
"""The share of the TTL after which a failed refresh of a live entry may be tried again."""
TOGETHER: Final = 0.05
"""Another settings of the plugin due within this share of the TTL is refreshed with the one due now,
so settings called together stay together (a call started a moment later is due a moment later)."""
DEFAULT_MAX_ENTRIES: Final = 4096
_CANCELLED_S: Final = 1.0
"""How long :meth:`CampaignStore.drain` waits for the calls it cancelled to end (a cancelled call ends
at its next ``await``)."""

Fetched = tuple[SlotOffer, ...] | Degraded
"""What one call gave: the validated offers, or why the plugin was left out."""
Waiting = list[tuple[str, "asyncio.Task[Fetched]"]]
"""The page's misses: plugin id and the shared call it waits for."""

_Key = tuple[LoadedPlugin, frozenset[tuple[str, str]]]
"""The loaded plugin (compared by identity: a new release or a new grant is a new one) and its
effective settings."""
_NO_SETTINGS: frozenset[tuple[str, str]] = frozenset()


class _Entry(NamedTuple):
    offers: tuple[SlotOffer, ...]
    fresh_until: float  # on the store's clock: the call's start plus the TTL
    refresh_at: float  # on the store's clock: a hit from here on starts a background refresh


class _Snapshot(NamedTuple):
    """What :meth:`CampaignStore.for_page` answered a page that waited for nothing and refreshed
    nothing, kept for the next page with the same plugins and settings token."""

    plugins: list[LoadedPlugin]  # compared element by element, by identity
    until: float  # on the store's clock: the first refresh point among the entries it served
    offers: dict[str, tuple[SlotOffer, ...]]


class PageRequest(Protocol):
    """What the store asks of a request: each plugin's effective settings for this customer, and all
    it has for anyone."""

    now: datetime

    @property
    def settings_token(self) -> object | None:
        """The same object for two requests only when :meth:`settings_of` answers alike for every
        plugin in both; ``None``: no such promise (every page then looks each plugin up)."""

    def settings_of(self, plugin: LoadedPlugin) -> Mapping[str, str]: ...
    def settings_variants_of(self, plugin: LoadedPlugin) -> Sequence[Mapping[str, str]]: ...


class CampaignStore:
    """Plugin × effective settings → validated campaign offers, fresh for ``ttl_ms`` (event loop only)."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        ttl_ms: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = DEFAULT_MAX_ENTRIES,
    ) -> None:
        if ttl_ms < 0:
            raise ValueError("ttl_ms must be >= 0")
        self.ttl = ttl_ms / 1000
        self.max_entries = max_entries
        self._dispatcher = dispatcher
        self._clock = clock
        self._entries: dict[_Key, _Entry] = {}
        self._flights: dict[_Key, asyncio.Task[Fetched]] = {}
        # Settings token → the last page's answer (see for_page); emptied whenever an entry changes.
        self._snapshots: dict[object, _Snapshot] = {}
        # The plugins that may run (see :meth:`retain`); ``None``: not told yet, any may.
        self._running: frozenset[LoadedPlugin] | None = None

    def __len__(self) -> int:
        return len(self._entries)

    def retain(self, plugins: Iterable[LoadedPlugin]) -> None:
        """Forget the entries of every plugin but ``plugins`` (those that may run now), and keep none of
        theirs that a call still running brings: a plugin suspended and then reinstated (the same
        loaded plugin again) is asked anew, never served what it offered before its suspension."""
        running = frozenset(plugins)
        self._running = running
        for key in [k for k in self._entries if k[0] not in running]:
            del self._entries[key]
        self._changed()

    def _changed(self) -> None:
        """The entries changed (one added, replaced, dropped or due sooner): no page's answer kept
        from before holds any more."""
        self._snapshots.clear()

    def for_page(
        self, plugins: Sequence[LoadedPlugin], request: PageRequest
    ) -> tuple[dict[str, tuple[SlotOffer, ...]], Waiting]:
        """The campaign offers of ``plugins`` held now, by plugin id, and the calls the page must wait
        for (misses: started here, or shared with one in flight). Hits past their refresh point start a
        background refresh. A hit costs a settings lookup, a tuple and a dict lookup.

        A page whose plugins and settings token are those of an earlier page that waited for nothing
        and refreshed nothing, before the first refresh point of what that page was served and with
        no entry changed since, gets that page's answer again: the same dict, which callers must not
        change (a page with misses gets a fresh one, for :func:`collect` to add to)."""
        clock = self._clock()
        token = request.settings_token
        if token is not None:
            kept = self._snapshots.get(token)
            if kept is not None and clock < kept.until and kept.plugins == plugins:
                return kept.offers, []
        offers: dict[str, tuple[SlotOffer, ...]] = {}
        waiting: Waiting = []
        entries = self._entries
        flights = self._flights
        settings_of = request.settings_of
        until = float("inf")
        for plugin in plugins:
            settings = settings_of(plugin)
            key = (plugin, frozenset(settings.items()) if settings else _NO_SETTINGS)
            entry = entries.get(key)
            if entry is not None:
                if clock < entry.fresh_until:
                    if clock >= entry.refresh_at:
                        until = clock  # refreshing (or waiting for a refresh): not kept
                        if not _runs_here(flights.get(key)):
                            self._start_all(key, plugin, settings, request)
                    elif entry.refresh_at < until:
                        until = entry.refresh_at
                    offers[plugin.id] = entry.offers
                    continue
                del entries[key]  # lapsed: never served
                self._changed()
            flight = flights.get(key)
            if not _runs_here(flight):
                flight = self._start_all(key, plugin, settings, request)
            waiting.append((plugin.id, flight))
        if token is not None and not waiting and clock < until:
            if len(self._snapshots) >= self.max_entries:
                self._snapshots.clear()
            self._snapshots[token] = _Snapshot(list(plugins), until, offers)
        return offers, waiting

    def _start_all(
        self, key: _Key, plugin: LoadedPlugin, settings: Mapping[str, str], request: PageRequest
    ) -> asyncio.Task[Fetched]:
        """Start the call for ``key`` and, with it, one for each other settings ``plugin`` has (for
        customers of other branches) not held fresh or called already; returns the one for ``key``.

        Calls for one branch's settings alone, started by a page of one of its customers, would tell a
        plugin without ``profile:basic`` (or a partner without the customer's consent to it) which
        branch the customer it sees on that page is in: started together, in a fixed order, and
        refreshed together from then on, they say only that someone opened a page."""
        now = request.now
        if self.ttl <= 0:  # nothing is kept: every page calls with its own settings only
            return self._start(key, plugin, settings, now, refresh=False)
        clock = self._clock()
        mine: asyncio.Task[Fetched] | None = None
        for variant in request.settings_variants_of(plugin):
            other = (plugin, frozenset(variant.items()) if variant else _NO_SETTINGS)
            if other == key:
                if mine is None:
                    mine = self._start(key, plugin, settings, now, refresh=key in self._entries)
                continue
            held = self._entries.get(other)
            if _runs_here(self._flights.get(other)) or (
                held is not None and clock < held.refresh_at - self.ttl * TOGETHER
            ):
                continue
            self._start(other, plugin, variant, now, refresh=held is not None)
        if mine is None:  # settings no branch has now (a reload in between): its own call only
            mine = self._start(key, plugin, settings, now, refresh=key in self._entries)
        return mine

    def _start(
        self, key: _Key, plugin: LoadedPlugin, settings: Mapping[str, str], now: datetime, *, refresh: bool
    ) -> asyncio.Task[Fetched]:
        # A context of its own: the call is shared, so its log lines carry its own id, not a page's.
        task = host_task(
            self._fetch(key, plugin, settings, now, refresh=refresh), context=contextvars.Context()
        )
        self._flights[key] = task  # also keeps the task from being collected
        task.add_done_callback(functools.partial(self._landed, key))
        return task

    async def _fetch(
        self, key: _Key, plugin: LoadedPlugin, settings: Mapping[str, str], now: datetime, *, refresh: bool
    ) -> Fetched:
        started = self._clock()
        request_id = new_request_id(None)
        REQUEST_ID.set(request_id)
        # To the second: the exact instant of the page whose miss started this shared call is no
        # plugin's business (for partners it would link their calls to that page, as in _build).
        ctx = AudienceContext(
            plugin_id=plugin.id, scopes=plugin.granted, now=now.replace(microsecond=0),
            settings=dict(settings), request_id=request_id,
        )
        # A KeyboardInterrupt from the plugin's inline code is its error, as any other (see PluginExit).
        gathered = await self._dispatcher.call_many(HOOK, [(plugin, ctx)])
        offers = gathered.results.get(plugin.id)
        if offers is None:
            if refresh:
                self._retry_later(key, plugin.id)
            if gathered.degraded:
                return gathered.degraded[0]
            return Degraded(plugin=plugin.id, hook=HOOK, reason="error", detail="the plugin gave no result")
        fetched = tuple(offers)
        if self.ttl > 0:
            fraction = refresh_fraction(plugin.id)
            self._put(key, _Entry(fetched, started + self.ttl, started + self.ttl * fraction))
        return fetched

    def _put(self, key: _Key, entry: _Entry) -> None:
        if self._running is not None and key[0] not in self._running:
            return  # switched off while its call ran: kept for nobody
        entries = self._entries
        entries.pop(key, None)
        self._changed()
        entries[key] = entry  # last in order: the oldest entries go first when the store is full
        if len(entries) > self.max_entries:
            clock = self._clock()
            for stale in [k for k, e in entries.items() if e.fresh_until <= clock]:
                del entries[stale]
            while len(entries) > self.max_entries:
                del entries[next(iter(entries))]

    def _retry_later(self, key: _Key, plugin_id: str) -> None:
        entry = self._entries.get(key)
        if entry is None:
            return
        retry = min(entry.fresh_until, self._clock() + self.ttl * RETRY_AFTER)
        self._entries[key] = entry._replace(refresh_at=retry)
        self._changed()
        log.warning(
            "refreshing the campaigns of plugin %r failed; the last ones are served until they are "
            "campaign_ttl_ms old", plugin_id, extra={"plugin": plugin_id, "hook": HOOK},
        )

    async def drain(self, timeout_s: float) -> int:
        """At shutdown: wait at most ``timeout_s`` for the calls in flight on this event loop (and any
        started meanwhile) to land, then cancel those still running and let them end, so none runs on
        against a closed database or is destroyed pending with the loop; returns how many were cancelled.
        A call left on another loop is not this loop's to wait for (it would never wake it)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        while flights := [task for task in self._flights.values() if _runs_here(task)]:
            left = end - loop.time()
            if left <= 0:
                for task in flights:
                    task.cancel()
                await asyncio.wait(flights, timeout=_CANCELLED_S)
                return len(flights)
            await asyncio.wait(flights, timeout=left)
        return 0

    def _landed(self, key: _Key, task: asyncio.Task[Fetched]) -> None:
        if self._flights.get(key) is task:
            del self._flights[key]
        if not task.cancelled() and task.exception() is not None:
            log.error("fetching campaigns failed in the host", exc_info=task.exception())
            self._retry_later(key, key[0].id)  # as after a plugin's failure: not again on the next hit


def _runs_here(flight: asyncio.Task[Fetched] | None) -> TypeGuard[asyncio.Task[Fetched]]:
    """True when ``flight`` is a call on the running event loop: one left on a loop that ended without
    finishing it never lands, so it is neither waited for nor counted as a refresh under way."""
    return flight is not None and flight.get_loop() is asyncio.get_running_loop()


async def collect(waiting: Waiting, offers: dict[str, tuple[SlotOffer, ...]], until: float) -> list[Degraded]:
    """Wait for the page's misses until ``until`` (event loop clock), add what arrived to ``offers``, and
    return the plugins left out. A call still running goes on, for later pages."""
    if not waiting:
        return []
    loop = asyncio.get_running_loop()
    pending = {task for _, task in waiting if not task.done()}
    if pending:
        await wait_until(pending, until, loop.time)  # never cancels them
    degraded: list[Degraded] = []
    for plugin_id, task in waiting:
        if not task.done():
            degraded.append(Degraded(
                plugin=plugin_id, hook=HOOK, reason="timeout",
                detail="its campaigns did not arrive within the page's deadline; the call goes on",
            ))
        elif task.cancelled() or task.exception() is not None:
            degraded.append(Degraded(plugin=plugin_id, hook=HOOK, reason="error", detail="the call failed"))
        else:
            result = task.result()
            if isinstance(result, Degraded):
                degraded.append(result)
            else:
                offers[plugin_id] = result
    return degraded


CAMPAIGNS: Final = "home.campaigns"
"""``runtime.extras`` key of the worker's :class:`CampaignStore`."""


def campaigns_of(runtime: Runtime) -> CampaignStore:
    """The worker's campaign store, made on first use (tests may put their own, with a clock)."""
    store: CampaignStore | None = runtime.extras.get(CAMPAIGNS)
    if store is None:
        store = CampaignStore(runtime.dispatcher, runtime.settings.campaign_ttl_ms)
        runtime.extras[CAMPAIGNS] = store
    return store
