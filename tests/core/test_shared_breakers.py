"""Breaker openings shared by workers through Redis: one worker's open breaker opens the others'."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
import pytest
import redis.asyncio
import redis.exceptions
from fulcrum_core.dispatch.breaker import BreakerConfig, BreakerState
from fulcrum_core.dispatch.clock import VirtualClock
from fulcrum_core.dispatch.dispatcher import Dispatcher
from fulcrum_core.dispatch.shared import SharedBreakers
from fulcrum_core.observability.metrics import Metrics
from fulcrum_core.plugins import LoadedPlugin, get_plugin_manager
from fulcrum_core.settings import Deadlines, Settings

pytestmark = pytest.mark.anyio

REDIS_ENV = "FULCRUM_TEST_REDIS_URL"
ONE_CALL = BreakerConfig(
    sliding_window_size=2, minimum_number_of_calls=2, permitted_calls_in_half_open=1,
    wait_duration_in_open_state_s=30,
)


@pytest.fixture
async def key(redis_url: str) -> AsyncIterator[str]:
    """A hash of this test's own; deleted afterwards."""
    name = f"fulcrum-test:breakers:{uuid.uuid4().hex}"
    yield name
    client = redis.asyncio.Redis.from_url(redis_url)
    await client.delete(name)
    await client.aclose()


class _Worker:
    """One worker: its own dispatcher (breakers on a virtual clock) sharing openings through Redis."""

    def __init__(
        self,
        settings: Settings,
        redis_url: str,
        key: str,
        wall: list[float],
        known: Callable[[str], bool] = lambda plugin_id: True,
    ) -> None:
        self.clock = VirtualClock()
        self.dispatcher = Dispatcher(settings, clock=self.clock)
        self.shared = SharedBreakers(
            redis_url, self.dispatcher.resilience, key=key, wall=lambda: wall[0], known=known
        )

    async def close(self) -> None:
        await self.shared.stop()
        self.dispatcher.close()


@pytest.fixture
def conf(settings: Settings) -> Settings:
    return msgspec.structs.replace(settings, deadlines=Deadlines(search=100), breaker=ONE_CALL)


def _loaded(settings: Settings, *plugins: object) -> list[LoadedPlugin]:
    return list(get_plugin_manager(settings, extra_plugins=plugins, load_entry_points=False).loaded.values())


async def test_a_breaker_opened_in_one_worker_opens_in_the_other(
    conf: Settings, redis_url: str, key: str, kit: Any
) -> None:
    """Worker A learns a plugin fails; worker B, after one read, skips it without calling it; when A's
    probe passes the spent entry goes, and B's breaker probes again on its own after the time left."""
    healthy = [False]
    calls: list[str] = []

    async def flaky(ctx: Any, query: str) -> Any:
        calls.append("call")
        if not healthy[0]:
            raise RuntimeError("down")
        return [kit.hit("h")]

    wall = [1_000_000.0]
    a, b = _Worker(conf, redis_url, key, wall), _Worker(conf, redis_url, key, wall)
    [plugin] = _loaded(conf, kit.plugin("flaky", search=flaky))
    call = [(plugin, kit.context(plugin))]
    try:
        for _ in range(2):
            await a.dispatcher.call_many("search", call, query="q")
        await a.shared.flush()
        assert a.dispatcher.breaker_open("flaky", "search")
        assert await b.shared.sync() == ["flaky:search"]
        calls.clear()
        skipped = await b.dispatcher.call_many("search", call, query="q")
        assert [(d.plugin, d.reason) for d in skipped.degraded] == [("flaky", "rejected")]
        assert calls == []  # B never called the failing plugin
        assert await b.shared.sync() == []  # already open: nothing to do, nothing published back

        healthy[0] = True
        a.clock.advance(30)
        wall[0] += 30
        probe = await a.dispatcher.call_many("search", call, query="q")
        await a.shared.flush()
        assert probe.degraded == []
        assert not a.dispatcher.breaker_open("flaky", "search")
        client = redis.asyncio.Redis.from_url(redis_url)
        assert await client.hgetall(key) == {}
        await client.aclose()
        b.clock.advance(29)  # B took the 30 s A had left when B read it
        assert b.dispatcher.breaker_open("flaky", "search")
        b.clock.advance(2)
        again = await b.dispatcher.call_many("search", call, query="q")
        assert again.degraded == []
        assert b.dispatcher.resilience.get("flaky", "search").breaker.state is BreakerState.CLOSED
    finally:
        await a.close()
        await b.close()


async def test_a_breaker_opened_by_slow_calls_is_shared_and_exported(
    conf: Settings, redis_url: str, key: str
) -> None:
    """Calls that all succeed, each over the slow-call threshold (90 ms of the 100 ms search deadline;
    the threshold is 80 ms), open worker A's breaker like failures would: B opens too, and both
    workers' ``fulcrum_breaker_state`` say open."""
    wall = [2_000_000.0]
    a, b = _Worker(conf, redis_url, key, wall), _Worker(conf, redis_url, key, wall)
    exported = []
    for worker in (a, b):
        metrics = Metrics()
        metrics.watch_breakers(worker.dispatcher.resilience.snapshot)
        exported.append(metrics)
    try:
        breaker = a.dispatcher.resilience.get("crawler", "search").breaker
        for _ in range(ONE_CALL.minimum_number_of_calls):
            assert breaker.try_acquire()
            breaker.on_success(0.090)
        assert (breaker.state, breaker.snapshot().failed_calls) == (BreakerState.OPEN, 0)
        await a.shared.flush()
        assert await b.shared.sync() == ["crawler:search"]
        for metrics in exported:
            body = metrics.render()
            assert b'fulcrum_breaker_state{hook="search",plugin="crawler",state="open"} 1.0' in body
            assert b'fulcrum_breaker_state{hook="search",plugin="crawler",state="closed"} 0.0' in body
    finally:
        await a.close()
        await b.close()


async def test_a_late_reader_opens_only_for_the_time_left(conf: Settings, redis_url: str, key: str) -> None:
    """A worker reading an opening 25 s after it was written stays open only the 5 s left."""
    wall = [3_000_000.0]
    a, b = _Worker(conf, redis_url, key, wall), _Worker(conf, redis_url, key, wall)
    try:
        a.dispatcher.resilience.get("late", "search").breaker.open_for(30)  # published like any opening
        await a.shared.flush()
        wall[0] += 25
        assert await b.shared.sync() == ["late:search"]
        breaker = b.dispatcher.resilience.get("late", "search").breaker
        b.clock.advance(4.9)
        assert breaker.try_acquire() is False
        b.clock.advance(0.2)
        assert breaker.try_acquire() is True  # a probe, 5 s after B read it
    finally:
        await a.close()
        await b.close()


async def test_expired_and_malformed_entries_are_ignored(conf: Settings, redis_url: str, key: str) -> None:
    """An opening whose time has passed, a value that is no time, a hook that does not exist: no
    breaker opens; entries long past their time are deleted."""
    wall = [2_000_000.0]
    worker = _Worker(conf, redis_url, key, wall)
    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    try:
        await client.hset(key, mapping={
            "p:search": int((wall[0] - 5) * 1000),
            "old:search": int((wall[0] - 7200) * 1000),
            "q:search": "soon",
            "r:no_such_hook": int((wall[0] + 60) * 1000),
            "nocolon": int((wall[0] + 60) * 1000),
        })
        assert await worker.shared.sync() == []
        assert not worker.dispatcher.breaker_open("p", "search")
        assert set(await client.hkeys(key)) == {"p:search", "q:search", "r:no_such_hook", "nocolon"}
    finally:
        await client.aclose()
        await worker.close()


async def test_redis_down_leaves_each_worker_judging_alone(conf: Settings, kit: Any) -> None:
    """With Redis unreachable, publishing fails quietly and the worker's own breaker still works."""
    dispatcher = Dispatcher(conf)
    shared = SharedBreakers("redis://127.0.0.1:1/0", dispatcher.resilience)

    async def down(ctx: Any, query: str) -> Any:
        raise RuntimeError("down")

    [plugin] = _loaded(conf, kit.plugin("down", search=down))
    try:
        await shared.start()
        for _ in range(2):
            await dispatcher.call_many("search", [(plugin, kit.context(plugin))], query="q")
        await shared.flush()
        assert dispatcher.breaker_open("down", "search")
        with pytest.raises(redis.exceptions.ConnectionError):
            await shared.sync()
    finally:
        await shared.stop()
        dispatcher.close()


async def test_an_opening_only_moves_later_and_a_close_never_erases_a_newer_one(
    conf: Settings, redis_url: str, key: str
) -> None:
    """Two workers: B's later opening extends A's; A's passed probe, whose own opening has
    ended, deletes nothing newer; a spent entry is deleted by the next close."""
    wall = [4_000_000.0]
    a, b = _Worker(conf, redis_url, key, wall), _Worker(conf, redis_url, key, wall)
    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    try:
        first = a.dispatcher.resilience.get("p", "search").breaker
        first.on_error(0.0)
        first.on_error(0.0)  # A opens: until wall + 30
        await a.shared.flush()
        assert await client.hget(key, "p:search") == str(int((wall[0] + 30) * 1000))
        wall[0] += 10
        second = b.dispatcher.resilience.get("p", "search").breaker
        second.on_error(0.0)
        second.on_error(0.0)  # B opens later: until wall + 40
        await b.shared.flush()
        extended = str(int((wall[0] + 30) * 1000))
        assert await client.hget(key, "p:search") == extended
        wall[0] -= 5  # a late write of an earlier opening (a slow connection) does not move it back
        a.dispatcher.resilience.get("p", "search").breaker.reset()
        first.on_error(0.0)
        first.on_error(0.0)
        await a.shared.flush()
        assert await client.hget(key, "p:search") == extended
        wall[0] += 30  # A's opening has ended, B's has not: A's probe passes, B's entry stays
        a.clock.advance(30)
        assert first.try_acquire() is True
        first.on_success(0.0)
        await a.shared.flush()
        assert await client.hget(key, "p:search") == extended
        wall[0] += 30  # now B's has ended too: the next close deletes it
        second_probe = b.dispatcher.resilience.get("p", "search").breaker
        b.clock.advance(30)
        assert second_probe.try_acquire() is True
        second_probe.on_success(0.0)
        await b.shared.flush()
        assert await client.hget(key, "p:search") is None
    finally:
        await client.aclose()
        await a.close()
        await b.close()


async def test_what_a_worker_ignores(conf: Settings, redis_url: str, key: str) -> None:
    """An opening about to end (less left than the hook's deadline, even when more than its slow-call
    threshold), a plugin this worker does not run: no breaker opens and none is made; after stop()
    nothing is published."""
    wall = [5_000_000.0]
    worker = _Worker(conf, redis_url, key, wall, known=lambda plugin_id: plugin_id != "stranger")
    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    try:
        await client.hset(key, mapping={
            "ending:search": int((wall[0] + 0.05) * 1000),  # 50 ms left, the search deadline is 100 ms
            "nearly:search": int((wall[0] + 0.09) * 1000),  # 90 ms: over the 80 ms slow-call threshold
            "stranger:search": int((wall[0] + 60) * 1000),
        })
        assert await worker.shared.sync() == []
        assert not worker.dispatcher.breaker_open("ending", "search")
        assert not worker.dispatcher.breaker_open("nearly", "search")
        assert [g.plugin for g in worker.dispatcher.resilience.all()] == ["ending", "nearly"]
        await worker.shared.stop()
        breaker = worker.dispatcher.resilience.get("after", "search").breaker
        breaker.on_error(0.0)
        breaker.on_error(0.0)
        assert breaker.state is BreakerState.OPEN
        assert await client.hget(key, "after:search") is None
    finally:
        await client.aclose()
        await worker.close()


async def test_a_worker_whose_clock_is_off_never_opens_others_for_longer_than_the_wait(
    conf: Settings, redis_url: str, key: str
) -> None:
    """Openings are wall-clock times written by each worker. One written by a worker whose clock runs
    an hour ahead (or read by one an hour behind) is ignored: obeyed, it would switch the plugin off
    everywhere for an hour, and again after every probe that passed. A small skew is tolerated, but no
    opening read from Redis keeps a breaker open longer than the configured wait."""
    ahead, here = [6_000_003.0], [6_000_000.0]
    a = _Worker(conf, redis_url, key, ahead)
    far = _Worker(conf, redis_url, key, [here[0] + 3600])
    b = _Worker(conf, redis_url, key, here)
    try:
        a.dispatcher.resilience.get("skewed", "search").breaker.open_for(30)
        far.dispatcher.resilience.get("far", "search").breaker.open_for(30)
        await a.shared.flush()
        await far.shared.flush()
        assert await b.shared.sync() == ["skewed:search"]
        assert not b.dispatcher.breaker_open("far", "search")
        breaker = b.dispatcher.resilience.get("skewed", "search").breaker
        assert breaker.admits_in() == pytest.approx(conf.breaker.wait_duration_in_open_state_s)
        b.clock.advance(conf.breaker.wait_duration_in_open_state_s)
        assert breaker.try_acquire() is True
    finally:
        await a.close()
        await far.close()
        await b.close()


async def test_a_hook_whose_deadline_outlasts_the_wait_publishes_its_own_longer_opening(
    conf: Settings, redis_url: str, key: str
) -> None:
    """A hook's breaker stays open at least the hook's deadline (60 s here, over the 30 s wait), and
    the opening it publishes says so."""
    slow_hook = msgspec.structs.replace(conf, deadlines=Deadlines(search=60_000))
    wall = [7_000_000.0]
    worker = _Worker(slow_hook, redis_url, key, wall)
    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    try:
        breaker = worker.dispatcher.resilience.get("p", "search").breaker
        breaker.on_error(0.0)
        breaker.on_error(0.0)
        await worker.shared.flush()
        assert breaker.admits_in() == 60.0
        assert await client.hget(key, "p:search") == str(int((wall[0] + 60) * 1000))
    finally:
        await client.aclose()
        await worker.close()


def test_the_app_shares_breakers_when_redis_is_configured(make_app: Any, redis_url: str) -> None:
    """With ``redis_url`` the app reads the other workers' openings from startup to shutdown; without
    it, or in dev mode (a developer's broken build must not open anyone's breakers), nothing is shared."""
    from fulcrum_core.app import SHARED_BREAKERS

    shared = make_app(redis_url=redis_url, redis_prefix=f"fulcrum-test:{uuid.uuid4().hex}:").runtime.extras[
        SHARED_BREAKERS
    ]
    assert isinstance(shared, SharedBreakers)
    assert shared._task is not None
    assert not shared._task.done()
    assert SHARED_BREAKERS not in make_app().runtime.extras
    assert SHARED_BREAKERS not in make_app(redis_url=redis_url, dev_mode=True).runtime.extras


async def test_connections_that_do_not_close_in_time_do_not_fail_the_shutdown(
    conf: Settings, caplog: Any
) -> None:
    """Stopping is best effort about Redis: a connection that does not close within its timeout (a loaded
    machine) is dropped with the worker, not raised into the shutdown hooks that follow (the campaign
    drain, the plugin threads, the database pool)."""
    import logging

    dispatcher = Dispatcher(conf)
    shared = SharedBreakers("redis://127.0.0.1:1/0", dispatcher.resilience)

    async def times_out(**kwargs: Any) -> None:
        raise redis.exceptions.TimeoutError("Timed out closing connection after 0.5")

    shared._redis.aclose = times_out
    try:
        with caplog.at_level(logging.WARNING, logger="fulcrum.dispatch"):
            await shared.stop()
    finally:
        dispatcher.close()
    [record] = [r for r in caplog.records if "Redis" in r.getMessage()]
    assert "TimeoutError: Timed out closing connection" in record.getMessage()
