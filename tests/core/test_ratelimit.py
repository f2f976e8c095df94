"""Per-client rate limits on /v1: 429 with Retry-After, per client, shared through Redis when configured."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fulcrum_core.observability.ratelimit import WARM_CONNECTIONS, MemoryCounter, RateLimiter, RedisCounter
from fulcrum_core.observability.setup import rate_limiter_of
from fulcrum_core.settings import RateLimit

TWO_PER_MINUTE = RateLimit(requests=2, window_seconds=60)


def test_client_over_its_limit_gets_429_with_retry_after(make_app: Any) -> None:
    """The third request in a window is refused as a problem with a Retry-After within the window."""
    app = make_app(rate_limit=TWO_PER_MINUTE)
    token = app.token()
    assert [app.get("/v1/home", token=token).status_code for _ in range(2)] == [200, 200]
    refused = app.get("/v1/home", token=token)
    assert refused.status_code == 429
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.json()["status"] == 429


def test_limits_are_per_client(make_app: Any) -> None:
    """One customer exhausting their limit does not affect another."""
    app = make_app(rate_limit=TWO_PER_MINUTE)
    first = app.token("synthetic-young-professional")
    for _ in range(3):
        app.get("/v1/home", token=first)
    other = app.token("synthetic-retiree")
    assert app.get("/v1/home", token=other).status_code == 200


def test_routes_outside_v1_are_not_limited(make_app: Any) -> None:
    """Health checks and the like are never counted."""
    app = make_app(rate_limit=RateLimit(requests=1, window_seconds=60))
    assert [app.client.get("/healthz").status_code for _ in range(3)] == [200, 200, 200]


def test_disabled_limit_never_refuses(make_app: Any) -> None:
    """With the limit switched off, any number of requests passes."""
    app = make_app(rate_limit=RateLimit(enabled=False, requests=1))
    token = app.token()
    assert {app.get("/v1/home", token=token).status_code for _ in range(3)} == {200}


@pytest.mark.anyio
async def test_memory_counter_restarts_each_window() -> None:
    """Counts grow within a window and start again at 1 in the next one."""
    counter = MemoryCounter()
    assert [await counter.hit("c", 10, 61) for _ in range(3)] == [1, 2, 3]
    assert await counter.hit("c", 11, 61) == 1
    assert await counter.hit("other", 11, 61) == 1


@pytest.mark.anyio
async def test_memory_counter_drops_old_windows_when_full() -> None:
    """At its key cap the counter forgets keys from past windows instead of growing forever."""
    counter = MemoryCounter(max_keys=2)
    await counter.hit("a", 1, 61)
    await counter.hit("b", 1, 61)
    assert await counter.hit("c", 2, 61) == 1
    assert await counter.hit("a", 2, 61) == 1


def test_unreachable_redis_counts_in_the_worker(make_app: Any) -> None:
    """A limiter outage is neither a failed request nor an unlimited client: this worker counts alone."""
    app = make_app(rate_limit=RateLimit(requests=2), redis_url="redis://127.0.0.1:9/0")
    token = app.token()
    assert [app.get("/v1/home", token=token).status_code for _ in range(3)] == [200, 200, 429]


class _Down:
    """A shared store that fails every hit and connect, counting how often it was asked."""

    def __init__(self) -> None:
        self.asked = 0
        self.opened = 0

    async def hit(self, key: str, window: int, ttl_s: int) -> int:
        self.asked += 1
        raise ConnectionError("connection refused")

    async def open(self) -> None:
        self.opened += 1
        raise ConnectionError("connection refused")

    async def close(self) -> None:
        """Nothing to release."""


@pytest.mark.anyio
async def test_a_down_store_is_asked_again_only_after_the_backoff() -> None:
    """After a failure the store is left alone for BACKOFF_S (no connect timeout per request), then
    tried again; meanwhile the worker's own count refuses past the limit."""
    from fulcrum_core.observability.ratelimit import BACKOFF_S
    from litestar.exceptions import TooManyRequestsException

    store, now = _Down(), [1000.0]
    limiter = RateLimiter(RateLimit(requests=3, window_seconds=60), store, clock=lambda: now[0])
    for _ in range(3):
        await limiter.check("client")
    assert store.asked == 1
    with pytest.raises(TooManyRequestsException):
        await limiter.check("client")
    now[0] += BACKOFF_S + 0.1
    with pytest.raises(TooManyRequestsException):  # asked again, down again: still this worker's count
        await limiter.check("client")
    assert store.asked == 2


@pytest.mark.anyio
async def test_redis_counter_is_shared_between_workers(redis_url: str) -> None:
    """Two counters (two workers) on one Redis add up to one count per window."""
    prefix = f"fulcrum-test:{uuid.uuid4().hex}:"
    # A generous reply timeout: this checks the shared count, not how fast a loaded machine answers.
    one = RedisCounter(redis_url, prefix=prefix, timeout_s=5)
    two = RedisCounter(redis_url, prefix=prefix, timeout_s=5)
    try:
        assert await one.hit("client", 5, 61) == 1
        assert await two.hit("client", 5, 61) == 2
        assert await one.hit("client", 6, 61) == 1
    finally:
        await one.close()
        await two.close()


def test_two_apps_on_one_redis_share_the_limit(make_app: Any, redis_url: str) -> None:
    """A client's requests to two workers count against one limit."""
    limit = RateLimit(requests=2, window_seconds=3600)
    sub = "synthetic-young-professional"
    one = make_app(rate_limit=limit, redis_url=redis_url)
    two = make_app(rate_limit=limit, redis_url=redis_url)
    # Each test run counts under a fresh client id so earlier runs' keys do not interfere.
    client = f"test-{uuid.uuid4().hex}"
    token_one = one.runtime.tokens.issue(sub, ["home:read"], kind="customer", client_id=client)
    token_two = two.runtime.tokens.issue(sub, ["home:read"], kind="customer", client_id=client)
    assert one.get("/v1/home", token=token_one).status_code == 200
    assert two.get("/v1/home", token=token_two).status_code == 200
    assert one.get("/v1/home", token=token_one).status_code == 429


@pytest.mark.anyio
async def test_a_burst_of_concurrent_requests_keeps_the_shared_count(redis_url: str) -> None:
    """More requests in flight in one worker than redis-py's pool holds connections (100 by default)
    is a busy worker, not a Redis outage: every hit waits its turn for a connection and is counted in
    Redis, so the limit stays one shared count (no falling back to this worker's own count, which
    would let each worker allow the whole limit again)."""
    from litestar.exceptions import TooManyRequestsException

    prefix = f"fulcrum-test:{uuid.uuid4().hex}:"
    counter = RedisCounter(redis_url, prefix=prefix, timeout_s=5)  # generous: a loaded CI machine
    limiter = RateLimiter(RateLimit(requests=20, window_seconds=3600), counter)

    async def one() -> bool:
        try:
            await limiter.check("client")
        except TooManyRequestsException:
            return False
        return True

    try:
        passed = await asyncio.gather(*(one() for _ in range(150)))
        assert sum(passed) == 20
        assert limiter._shared_again_at == float("-inf")  # never took itself for cut off from Redis
        assert await counter.hit("client", int(time.time() // 3600), 3601) == 151
    finally:
        await counter.close()


def _refuse_new_connections() -> Any:
    import redis.exceptions

    raise redis.exceptions.ConnectionError("this test allows no connection opened after startup")


@pytest.mark.anyio
async def test_an_opened_counter_serves_a_first_burst_without_connecting(redis_url: str) -> None:
    """``open`` connects before the first hit: a burst of as many hits as it opened connections for
    needs no connect (opened lazily, each paid one, and one over the connect timeout on a loaded fresh
    worker sent it counting alone, letting clients through more than the limit)."""
    prefix = f"fulcrum-test:{uuid.uuid4().hex}:"
    counter = RedisCounter(redis_url, prefix=prefix, timeout_s=5)  # not a speed test
    try:
        await counter.open()
        counter._pool.make_connection = _refuse_new_connections
        counts = await asyncio.gather(*(counter.hit("client", 1, 61) for _ in range(WARM_CONNECTIONS)))
        assert sorted(counts) == list(range(1, WARM_CONNECTIONS + 1))
    finally:
        await counter.close()


def test_a_worker_connects_to_redis_before_it_serves(make_app: Any, redis_url: str) -> None:
    """The app's startup opens the limiter's connections: its first request is counted in Redis with
    no connect of its own."""
    limit = RateLimit(requests=2, window_seconds=3600)
    app = make_app(rate_limit=limit, redis_url=redis_url)
    limiter = rate_limiter_of(app.runtime)
    assert limiter is not None
    assert limiter.shared
    limiter.counter._pool.make_connection = _refuse_new_connections  # type: ignore[attr-defined]
    client = f"test-{uuid.uuid4().hex}"  # a fresh count: earlier runs' keys do not interfere
    token = app.runtime.tokens.issue("synthetic-young-professional", ["home:read"], kind="customer",
                                     client_id=client)
    assert [app.get("/v1/home", token=token).status_code for _ in range(3)] == [200, 200, 429]
    assert limiter.shared  # never fell back to counting alone


def test_a_worker_starts_without_redis_says_so_and_counts_alone(
    make_app: Any, log_records: Callable[[str], list[logging.LogRecord]]
) -> None:
    """Redis down at startup does not stop the worker: it says so at once, and counts each client in its
    own memory from its first request (which waits for no connect), across all its routes."""
    records = log_records("fulcrum.ratelimit")
    app = make_app(rate_limit=RateLimit(requests=2), redis_url="redis://127.0.0.1:9/0")
    said = [r for r in records if "unreachable at startup" in r.getMessage()]
    assert len(said) == 1
    assert said[0].levelno == logging.WARNING
    limiter = rate_limiter_of(app.runtime)
    assert limiter is not None
    assert not limiter.shared
    token = app.token()
    assert app.get("/v1/home", token=token).status_code == 200
    assert app.get("/v1/search", token=token, params={"q": "fund"}).status_code == 200
    assert app.get("/v1/home", token=token).status_code == 429  # one count for every route


class _Returns:
    """A shared store that is down until told otherwise."""

    def __init__(self) -> None:
        self.up = False
        self.asked = 0
        self.opened = 0

    async def hit(self, key: str, window: int, ttl_s: int) -> int:
        self.asked += 1
        return self.asked

    async def open(self) -> None:
        self.opened += 1
        if not self.up:
            raise ConnectionError("connection refused")

    async def close(self) -> None:
        """Nothing to release."""


async def _until(condition: Any, within_s: float = 10.0) -> None:
    """Wait (on the event loop) until ``condition()``; fail after ``within_s``, which is generous."""
    end = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < end, "the condition never held"
        await asyncio.sleep(0.005)


@pytest.mark.anyio
async def test_a_store_down_at_startup_is_asked_again_in_the_background() -> None:
    """While the store is down since startup no request asks it; the background retry finds it back,
    and from then on hits are counted in it."""
    store = _Returns()
    limiter = RateLimiter(RateLimit(requests=5, window_seconds=60), store, retry_s=0.01)
    try:
        await limiter.start()
        assert not limiter.shared
        await _until(lambda: store.opened >= 3)  # retried, and still down
        await limiter.check("client")
        assert store.asked == 0
        store.up = True
        await _until(lambda: limiter.shared)
        await limiter.check("client")
        assert store.asked == 1
    finally:
        await limiter.close()


@pytest.mark.anyio
async def test_closing_stops_the_background_retry() -> None:
    """A worker stopping while its store is still down leaves no retry running."""
    store = _Returns()
    limiter = RateLimiter(RateLimit(), store, retry_s=0.01)
    await limiter.start()
    task = limiter._reopening
    assert task is not None
    await limiter.close()
    assert task.done()


async def _close_times_out(**kwargs: Any) -> None:
    import redis.exceptions

    raise redis.exceptions.TimeoutError("Timed out closing connection after 0.2")


@pytest.mark.anyio
async def test_connections_that_do_not_close_in_time_do_not_fail_the_shutdown(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """redis-py waits the connect timeout (0.2 s) for each connection it closes, and raises when one runs
    over (seen on a loaded machine): at shutdown that is no error of the app's, and the shutdown hooks
    after the limiter's (the shared metrics' files) must still run. The connections go with the worker."""
    counter = RedisCounter("redis://127.0.0.1:1/0")
    counter._redis.aclose = _close_times_out
    limiter = RateLimiter(RateLimit(), counter)
    with caplog.at_level(logging.WARNING, logger="fulcrum.ratelimit"):
        await limiter.close()
    [record] = [r for r in caplog.records if r.name == "fulcrum.ratelimit"]
    assert "TimeoutError: Timed out closing connection" in record.getMessage()
    assert "dropped" in record.getMessage()
