"""The worker's campaign store: reuse within the TTL, refresh ahead, shared misses, failures, keys.

Driven on an event loop with a real dispatcher and an injected clock (no sleeps): ``for_page`` is what
the home page asks, and a test awaits the calls the store started.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from fulcrum_core.campaigns import HOOK, CampaignStore, collect
from fulcrum_core.dispatch.dispatcher import Dispatcher
from fulcrum_core.dispatch.results import Degraded
from fulcrum_core.plugins import LoadedPlugin, get_plugin_manager
from fulcrum_core.settings import Deadlines, Settings
from fulcrum_sdk.context import AudienceContext
from fulcrum_sdk.models import SlotOffer

pytestmark = [pytest.mark.anyio, pytest.mark.both_loops]

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
TTL_MS = 60_000


class Clock:
    """A monotonic clock the test moves by hand (seconds)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


_TOKENS: dict[object, object] = {}
"""One settings token per distinct page settings, when the pages give tokens (see ``tokens``)."""


@pytest.fixture(autouse=True, params=["no token", "token"])
def tokens(request: pytest.FixtureRequest) -> bool:
    """Every test runs with pages that promise nothing (each plugin looked up on every page) and with
    pages that give a settings token (a page like the last one answered from what the store kept):
    the answers must be the same."""
    Page.with_token = request.param == "token"
    _TOKENS.clear()
    return Page.with_token


class Page:
    """What the store asks of a request: ``now`` and each plugin's effective settings (the page's are
    the only ones the plugin has), and a settings token standing for them (or none)."""

    with_token = False

    def __init__(self, settings: Mapping[str, str] | None = None) -> None:
        self.now = NOW
        self._settings = settings
        self.lookups = 0

    @property
    def settings_token(self) -> object | None:
        if not self.with_token:
            return None
        return _TOKENS.setdefault(frozenset((self._settings or {}).items()), object())

    def settings_of(self, plugin: LoadedPlugin) -> Mapping[str, str]:
        self.lookups += 1
        return plugin.settings if self._settings is None else self._settings

    def settings_variants_of(self, plugin: LoadedPlugin) -> list[Mapping[str, str]]:
        return [self.settings_of(plugin)]


class Campaigner:
    """A campaign hook that counts its calls and answers with ``answer(call number)``."""

    def __init__(self, kit: Any, answer: Callable[[int], Any] | None = None) -> None:
        self.kit = kit
        self.calls: list[AudienceContext] = []
        self.answer = answer or (lambda n: [kit.offer("home.banner", f"v{n}")])

    def __call__(self, ctx: AudienceContext) -> Any:
        self.calls.append(ctx)
        return self.answer(len(self.calls))


def _setup(
    settings: Settings, kit: Any, hook: Callable[..., Any], *, ttl_ms: int = TTL_MS
) -> tuple[CampaignStore, LoadedPlugin, Clock]:
    settings = msgspec.structs.replace(settings, deadlines=Deadlines(home_slot_offers=5_000))
    def campaigns(ctx: AudienceContext) -> Any:  # pluggy takes functions, not callable objects
        return hook(ctx)

    impl = campaigns if isinstance(hook, Campaigner) else hook
    plugins = get_plugin_manager(
        settings, load_entry_points=False, extra_plugins=[kit.plugin("camp", home_slot_campaigns=impl)]
    )
    clock = Clock()
    return CampaignStore(Dispatcher(settings), ttl_ms, clock=clock), plugins.loaded["camp"], clock


async def _page(store: CampaignStore, plugin: LoadedPlugin, page: Page | None = None) -> Any:
    """One page's campaigns of ``plugin``: held ones, or what its miss brought (waiting for it)."""
    offers, waiting = store.for_page([plugin], page or Page())
    degraded = await collect(waiting, dict(offers), asyncio.get_running_loop().time() + 30)
    if degraded:
        return degraded
    if waiting:
        result = waiting[0][1].result()
        return [o.key for o in result]
    return [o.key for o in offers[plugin.id]]


async def _flights(store: CampaignStore) -> None:
    """Let every call the store started land."""
    while store._flights:
        await asyncio.gather(*store._flights.values(), return_exceptions=True)


async def test_one_call_serves_every_page_within_the_ttl(settings: Settings, kit: Any) -> None:
    """The first page's miss calls the plugin; later pages before the refresh point are served from
    memory without calling it."""
    hook = Campaigner(kit)
    store, plugin, clock = _setup(settings, kit, hook)
    assert await _page(store, plugin) == ["v1"]
    for _ in range(20):
        clock.now += 1
        assert await _page(store, plugin) == ["v1"]
    assert len(hook.calls) == 1
    assert isinstance(hook.calls[0], AudienceContext)
    assert hook.calls[0].scopes == plugin.granted


async def test_a_hit_past_the_refresh_point_is_served_and_refreshes_once(
    settings: Settings, kit: Any
) -> None:
    """Past 90 % of the TTL a hit still gets the held offers and starts one background call; a second
    hit meanwhile starts none; the next page gets the refreshed offers."""
    hook = Campaigner(kit)
    store, plugin, clock = _setup(settings, kit, hook)
    await _page(store, plugin)
    clock.now += TTL_MS / 1000 * 0.9 + 0.001
    offers, waiting = store.for_page([plugin], Page())
    again, _ = store.for_page([plugin], Page())
    assert ([o.key for o in offers["camp"]], waiting) == (["v1"], [])
    assert [o.key for o in again["camp"]] == ["v1"]
    await _flights(store)
    assert len(hook.calls) == 2
    assert await _page(store, plugin) == ["v2"]


async def test_nothing_older_than_the_ttl_is_served(settings: Settings, kit: Any) -> None:
    """At the TTL the entry has lapsed: the page waits for a new call instead of serving it."""
    hook = Campaigner(kit)
    store, plugin, clock = _setup(settings, kit, hook)
    await _page(store, plugin)
    clock.now += TTL_MS / 1000
    offers, waiting = store.for_page([plugin], Page())
    assert offers == {}
    assert [pid for pid, _ in waiting] == ["camp"]
    await _flights(store)
    assert await _page(store, plugin) == ["v2"]


async def test_concurrent_misses_share_one_call(settings: Settings, kit: Any) -> None:
    """Pages missing together wait for the same call: the plugin is called once."""
    release = asyncio.Event()
    calls: list[int] = []

    async def campaigns(ctx: AudienceContext) -> list[SlotOffer]:
        calls.append(1)
        await release.wait()
        return [kit.offer("home.banner", "shared")]

    store, plugin, _ = _setup(settings, kit, campaigns)
    pages = [store.for_page([plugin], Page()) for _ in range(5)]
    tasks = {waiting[0][1] for _, waiting in pages}
    assert len(tasks) == 1
    release.set()
    await _flights(store)
    assert calls == [1]
    assert await _page(store, plugin) == ["shared"]


@pytest.mark.parametrize("failure", ["raises", "garbage"])
async def test_a_failed_refresh_serves_the_last_offers_until_the_ttl_only(
    settings: Settings, kit: Any, failure: str
) -> None:
    """A refresh that raises or returns garbage keeps the held offers to the end of the TTL, then the
    plugin is degraded (reason named) until a call succeeds."""
    good = [True]

    def answer(n: int) -> Any:
        if good[0]:
            return [kit.offer("home.banner", f"v{n}")]
        if failure == "raises":
            raise RuntimeError("campaign service down")
        return "not a list"

    hook = Campaigner(kit, answer)
    store, plugin, clock = _setup(settings, kit, hook)
    await _page(store, plugin)
    good[0] = False
    clock.now += TTL_MS / 1000 * 0.95
    assert await _page(store, plugin) == ["v1"]  # served, and a refresh started
    await _flights(store)
    assert len(hook.calls) == 2
    assert await _page(store, plugin) == ["v1"]  # the retry waits a while
    clock.now += TTL_MS / 1000 * 0.05
    (degraded,) = await _page(store, plugin)
    assert isinstance(degraded, Degraded)
    assert (degraded.plugin, degraded.hook) == ("camp", HOOK)
    assert degraded.reason == ("error" if failure == "raises" else "invalid")
    good[0] = True
    assert await _page(store, plugin) == ["v4"]


async def test_a_ttl_of_zero_calls_on_every_page(settings: Settings, kit: Any) -> None:
    """``campaign_ttl_ms = 0``: nothing is kept, every page calls the plugin."""
    hook = Campaigner(kit)
    store, plugin, _ = _setup(settings, kit, hook, ttl_ms=0)
    assert [await _page(store, plugin) for _ in range(3)] == [["v1"], ["v2"], ["v3"]]
    assert len(store) == 0


async def test_each_distinct_settings_gets_its_own_entry(settings: Settings, kit: Any) -> None:
    """Effective settings are part of the key: the plugin is asked once per distinct settings, each
    time with them, and each page gets the offers made for its settings."""
    hook = Campaigner(kit, lambda n: None)

    def answer(n: int) -> list[SlotOffer]:
        return [kit.offer("home.banner", hook.calls[-1].settings.get("city", "none"))]

    hook.answer = answer
    store, plugin, _ = _setup(settings, kit, hook)
    sh, sz = Page({"city": "shanghai"}), Page({"city": "shenzhen"})
    assert await _page(store, plugin, sh) == ["shanghai"]
    assert await _page(store, plugin, sz) == ["shenzhen"]
    assert await _page(store, plugin, Page({"city": "shanghai"})) == ["shanghai"]
    assert [dict(c.settings) for c in hook.calls] == [{"city": "shanghai"}, {"city": "shenzhen"}]
    assert len(store) == 2


async def test_a_changed_grant_is_a_new_entry(settings: Settings, kit: Any) -> None:
    """The plugin is asked again with its new grant: what it offers may depend on its scopes."""
    hook = Campaigner(kit)
    store, plugin, _ = _setup(settings, kit, hook)
    await _page(store, plugin)
    narrowed = dataclasses.replace(plugin, granted=frozenset({"slot:home.banner"}))
    assert await _page(store, narrowed) == ["v2"]
    assert hook.calls[-1].scopes == frozenset({"slot:home.banner"})


def test_the_ttl_comes_from_the_environment_and_refuses_negatives() -> None:
    """``FULCRUM_CAMPAIGN_TTL_MS`` sets ``campaign_ttl_ms`` (default 60 s); a negative one is refused
    naming the variable."""
    from fulcrum_core.settings import SettingsError, load_settings

    assert load_settings(environ={}).campaign_ttl_ms == 60_000
    assert load_settings(environ={"FULCRUM_CAMPAIGN_TTL_MS": "0"}).campaign_ttl_ms == 0
    with pytest.raises(SettingsError, match="FULCRUM_CAMPAIGN_TTL_MS"):
        load_settings(environ={"FULCRUM_CAMPAIGN_TTL_MS": "-1"})


async def test_retain_forgets_the_plugins_switched_off_and_what_their_running_calls_bring(
    settings: Settings, kit: Any
) -> None:
    """``retain`` drops every entry of a plugin not among those that may run, and a call of it that
    was running then lands for nobody: when it runs again, it is asked anew."""
    release = asyncio.Event()
    hook = Campaigner(kit)
    store, plugin, _ = _setup(settings, kit, hook)
    await _page(store, plugin)
    store.retain([plugin])
    assert len(store) == 1
    store.retain([])
    assert len(store) == 0

    async def slow(ctx: AudienceContext) -> list[SlotOffer]:
        await release.wait()
        return [kit.offer("home.banner", "late")]

    store, plugin, _ = _setup(settings, kit, slow)
    store.for_page([plugin], Page())
    store.retain([])
    release.set()
    await _flights(store)
    assert len(store) == 0


async def test_a_call_left_on_another_event_loop_does_not_stop_the_refresh(
    settings: Settings, kit: Any
) -> None:
    """A call started on an event loop that ended without finishing it (an app served on another loop
    with the same runtime) never lands: a hit past the refresh point starts one on this loop instead of
    waiting for it, so the entry is refreshed ahead rather than left to lapse."""
    hook = Campaigner(kit)
    store, plugin, clock = _setup(settings, kit, hook)
    await _page(store, plugin)
    (key,) = store._entries
    other = asyncio.new_event_loop()
    try:
        stranded: asyncio.Future[Any] = other.create_future()  # what the other loop left behind
        store._flights[key] = stranded  # type: ignore[assignment]
        clock.now += TTL_MS / 1000 * 0.95
        offers, waiting = store.for_page([plugin], Page())
        assert ([o.key for o in offers["camp"]], waiting) == (["v1"], [])
        assert store._flights[key] is not stranded
        await _flights(store)
        assert await _page(store, plugin) == ["v2"]
    finally:
        other.close()


class BranchPage(Page):
    """A page whose customer's branch has ``settings``, of a plugin that has ``variants`` in all."""

    def __init__(self, settings: Mapping[str, str], variants: list[Mapping[str, str]]) -> None:
        super().__init__(settings)
        self.variants = variants

    def settings_variants_of(self, plugin: LoadedPlugin) -> list[Mapping[str, str]]:
        return self.variants


async def test_every_settings_is_called_and_refreshed_together(settings: Settings, kit: Any) -> None:
    """A miss or a refresh for one branch's settings calls the plugin with each of its settings (in
    their fixed order), so no call says whose page started it; with ``campaign_ttl_ms = 0`` only the
    page's own settings are called (nothing is kept for others)."""
    variants: list[Mapping[str, str]] = [{"city": "hq"}, {"city": "shanghai"}]
    hook = Campaigner(kit, lambda n: [kit.offer("home.banner", hook.calls[-1].settings["city"])])
    store, plugin, clock = _setup(settings, kit, hook)
    assert await _page(store, plugin, BranchPage({"city": "shanghai"}, variants)) == ["shanghai"]
    await _flights(store)
    assert [c.settings["city"] for c in hook.calls] == ["hq", "shanghai"]
    assert await _page(store, plugin, BranchPage({"city": "hq"}, variants)) == ["hq"]
    assert len(hook.calls) == 2
    # HQ's entry is due a moment after 021's (its call started a little later): refreshed with it all
    # the same, or the two would drift apart and a lone call start again.
    hq = next(k for k in store._entries if dict(k[1]) == {"city": "hq"})
    store._entries[hq] = store._entries[hq]._replace(refresh_at=store._entries[hq].refresh_at + 0.01)
    clock.now = store._entries[hq].refresh_at - 0.005  # 021's is due, HQ's not yet
    assert await _page(store, plugin, BranchPage({"city": "shanghai"}, variants)) == ["shanghai"]
    await _flights(store)
    assert [c.settings["city"] for c in hook.calls[2:]] == ["hq", "shanghai"]

    hook.calls.clear()
    store, plugin, _ = _setup(settings, kit, hook, ttl_ms=0)
    assert await _page(store, plugin, BranchPage({"city": "shanghai"}, variants)) == ["shanghai"]
    assert [c.settings["city"] for c in hook.calls] == ["shanghai"]


async def test_a_refresh_failing_in_the_host_is_retried_later_not_on_every_hit(
    settings: Settings, kit: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refresh that fails in the host itself (not the plugin) is logged and, like a plugin's failure,
    tried again only after a share of the TTL: the hits meanwhile are served and start nothing."""
    hook = Campaigner(kit)
    store, plugin, clock = _setup(settings, kit, hook)
    await _page(store, plugin)
    attempts: list[int] = []

    async def broken(*args: Any, **kwargs: Any) -> Any:
        attempts.append(1)
        raise RuntimeError("host bug")

    monkeypatch.setattr(store._dispatcher, "call_many", broken)
    clock.now += TTL_MS / 1000 * 0.95
    for _ in range(3):
        assert await _page(store, plugin) == ["v1"]
        await _flights(store)
    assert attempts == [1]


async def test_a_page_like_the_last_is_answered_from_what_was_kept(settings: Settings, kit: Any) -> None:
    """With a settings token, a page with the same plugins and token as one that waited for nothing
    and refreshed nothing gets that page's answer without a lookup per plugin, until the first
    refresh point, an entry changing, another token or other plugins."""
    Page.with_token = True
    hook = Campaigner(kit)
    store, plugin, clock = _setup(settings, kit, hook)
    assert await _page(store, plugin) == ["v1"]  # the miss: nothing kept
    first = Page()
    offers, waiting = store.for_page([plugin], first)
    assert first.lookups > 0
    assert (waiting, [o.key for o in offers["camp"]]) == ([], ["v1"])
    again = Page()
    kept, waiting = store.for_page([plugin], again)
    assert (again.lookups, waiting, kept) == (0, [], offers)
    assert kept is offers  # the same answer, not a copy

    other = Page({"city": "shanghai"})  # another token: its own lookups (and its own call)
    store.for_page([plugin], other)
    assert other.lookups > 0
    narrowed = dataclasses.replace(plugin, granted=frozenset({"slot:home.banner"}))
    page = Page()
    store.for_page([narrowed], page)  # other plugins: looked up
    assert page.lookups > 0
    await _flights(store)

    # Past the first refresh point: looked up, the refresh starts, and its landing is seen.
    clock.now += TTL_MS / 1000 * 0.95
    page = Page()
    offers, _ = store.for_page([plugin], page)
    assert page.lookups > 0
    assert [o.key for o in offers["camp"]] == ["v1"]
    await _flights(store)
    page = Page()
    offers, _ = store.for_page([plugin], page)
    assert page.lookups > 0
    assert [o.key for o in offers["camp"]] == ["v4"]
    page = Page()
    assert store.for_page([plugin], page)[0] is offers
    assert page.lookups == 0

    store.retain([])  # switched off: what was kept goes with its entries
    page = Page()
    _, waiting = store.for_page([plugin], page)
    assert page.lookups > 0
    assert len(waiting) == 1
    await _flights(store)



async def test_draining_waits_for_a_call_in_flight(settings: Settings, kit: Any) -> None:
    """A stopping host lets a call in flight land: the drain returns once it has, cancelling nothing,
    and its offers are held."""
    release = asyncio.Event()
    calls: list[int] = []

    async def campaigns(ctx: AudienceContext) -> list[SlotOffer]:
        calls.append(1)
        await release.wait()
        return [kit.offer("home.banner", "landed")]

    store, plugin, _ = _setup(settings, kit, campaigns)
    store.for_page([plugin], Page())
    drained = asyncio.ensure_future(store.drain(10))
    await asyncio.sleep(0.05)
    assert not drained.done()  # still waiting for the call
    release.set()
    assert await drained == 0
    assert await _page(store, plugin) == ["landed"]
    assert calls == [1]


async def test_draining_cancels_a_call_still_running_after_its_wait(settings: Settings, kit: Any) -> None:
    """A call still running when the wait ends is cancelled and has ended when the drain returns: it
    neither runs on against a closed database nor is destroyed pending with the loop."""

    async def campaigns(ctx: AudienceContext) -> list[SlotOffer]:
        await asyncio.Event().wait()
        return []

    store, plugin, _ = _setup(settings, kit, campaigns)
    _, waiting = store.for_page([plugin], Page())
    flight = waiting[0][1]
    assert await store.drain(0.05) == 1
    assert flight.cancelled()
    assert store._flights == {}
