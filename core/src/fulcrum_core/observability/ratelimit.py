"""Per-client rate limiting on ``/v1``: a fixed window per client, 429 with ``Retry-After`` when full.

A client is the token's ``client_id`` plus its subject (one customer on one app install), read from
the principal the authentication middleware put in ``scope["user"]``; unauthenticated requests
never get here. Counts live in Redis when ``settings.redis_url`` is set, so every worker shares one
count (``INCR`` + ``EXPIRE`` in one Lua script: atomic across workers), and in this worker's
memory otherwise. Windows are numbered from the epoch in wall-clock seconds, so workers agree.

Litestar's own ``RateLimitMiddleware`` is not used: it reads, appends to and rewrites a JSON list
of timestamps per request (not atomic across workers, and O(limit) per request) and sends no
``Retry-After``.

If Redis cannot be reached, this worker counts in its own memory for ``BACKOFF_S`` before it asks
Redis again (one warning line per interval): a limiter outage must neither take the app down nor
make every request wait out a connect timeout, and a client is still limited, by each worker alone.

A worker opens its connections before it serves (:meth:`RateLimiter.start`, at app startup): opened
lazily, the first requests of a worker started under load each paid a connect, and one over the
connect timeout sent the worker counting alone for ``BACKOFF_S``, letting a client through more than
the limit. If Redis does not answer then, the worker starts anyway, says so, counts alone and asks
Redis again in the background every ``BACKOFF_S`` until it answers; no request waits for that.
One :class:`RateLimiter` serves every route of the app (litestar builds each route its own middleware
instance), so a worker counting alone keeps one count per client, not one per route.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from typing import Any, Protocol

from litestar.enums import ScopeType
from litestar.exceptions import TooManyRequestsException
from litestar.types import ASGIApp, Receive, Scope, Send

from fulcrum_core.dispatch.leftovers import host_task
from fulcrum_core.observability.throttle import ThrottledWarning
from fulcrum_core.settings import RateLimit

__all__ = [
    "MAX_CONNECTIONS", "WARM_CONNECTIONS", "Counter", "MemoryCounter", "RateLimitMiddleware", "RateLimiter",
    "RedisCounter", "client_key",
]

log = logging.getLogger("fulcrum.ratelimit")

PREFIX = "/v1/"

MAX_CONNECTIONS = 100
"""Connections to Redis per worker (redis-py's default); a hit beyond them waits for one."""

WARM_CONNECTIONS = 20
"""Connections a worker opens before it serves: one per hit of the first requests that arrive together.
A larger burst opens more on demand (a worker keeps every connection it opened, up to ``MAX_CONNECTIONS``)."""

BACKOFF_S = 5.0
"""After Redis failed, how long this worker counts on its own before asking Redis again."""

STARTUP_S = 2.0
"""How long opening the connections at startup (or again in the background) may take in all: a connect or
reply over its timeout is tried again within it, a refused connection is not."""

_UNAVAILABLE = ThrottledWarning(log, "rate limit store unavailable; counting in this worker for a while")


class Counter(Protocol):
    """Counts hits of a key in numbered windows."""

    async def hit(self, key: str, window: int, ttl_s: int) -> int:
        """Add one hit to ``key`` in window number ``window`` and return the window's count."""
        ...

    async def open(self) -> None:
        """Connect before the first hit; raise when the store does not answer."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class MemoryCounter:
    """This worker's counts; only the current window of each key is kept."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self._counts: dict[str, tuple[int, int]] = {}
        self._max_keys = max_keys

    async def hit(self, key: str, window: int, ttl_s: int) -> int:
        """Count one hit (a key's count restarts when its window number changes)."""
        current = self._counts.get(key)
        count = current[1] + 1 if current is not None and current[0] == window else 1
        if current is None and len(self._counts) >= self._max_keys:
            self._counts = {k: v for k, v in self._counts.items() if v[0] == window}
        self._counts[key] = (window, count)
        return count

    async def open(self) -> None:
        """Nothing to connect to."""

    async def close(self) -> None:
        """Nothing to release."""


_HIT_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[1])
return count
"""
"""``INCR`` + ``EXPIRE`` as one server-side script: atomic like ``MULTI``, but one command and one
reply instead of four (measured 86 µs instead of 139 µs per hit on a local Redis, a ping being 81 µs)."""


class RedisCounter:
    """Counts shared by every worker, in Redis (``redis.asyncio``)."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "fulcrum:ratelimit:",
        timeout_s: float = 0.05,
        max_connections: int = MAX_CONNECTIONS,
        warm_connections: int = WARM_CONNECTIONS,
        startup_s: float = STARTUP_S,
    ) -> None:
        """``timeout_s`` bounds each reply, and the wait for a free connection: a slow Redis costs a
        request twice that at most.

        The pool blocks (up to ``timeout_s``) when all ``max_connections`` are in use: redis-py's
        default pool raises at once instead, and a burst of more requests in flight than it holds
        would be taken for an outage, every worker then counting alone for ``BACKOFF_S``."""
        import redis.asyncio

        pool = redis.asyncio.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout_s,
            socket_timeout=timeout_s,
            socket_connect_timeout=max(0.2, timeout_s),
        )
        self._redis: Any = redis.asyncio.Redis(connection_pool=pool)
        self._pool = pool
        self._warm = min(warm_connections, max_connections)
        self._startup_s = startup_s
        self._prefix = prefix
        # EVALSHA, loading the script again if the server lost it (a restart, SCRIPT FLUSH).
        self._hit: Any = self._redis.register_script(_HIT_SCRIPT)

    async def hit(self, key: str, window: int, ttl_s: int) -> int:
        """``INCR`` the window's key and set its expiry, atomically (one Lua script)."""
        count = await self._hit(keys=[f"{self._prefix}{key}:{window}"], args=[ttl_s])
        return int(count)

    async def open(self) -> None:
        """Open ``warm_connections`` connections into the pool and load the hit script (so the first
        ``EVALSHA`` finds it), within ``startup_s``; raise if Redis does not answer.

        Each connect and reply keeps the pool's timeouts (a connection keeps them for its reconnects),
        and one that runs over is tried again until ``startup_s`` has passed: a worker started on a
        loaded machine still opens its connections, while a refused connection fails at once."""
        import redis.exceptions

        end = time.monotonic() + self._startup_s

        async def retried(attempt: Callable[[], Any]) -> Any:
            while True:
                try:
                    return await attempt()
                except redis.exceptions.TimeoutError:
                    if time.monotonic() >= end:
                        raise

        await retried(lambda: self._redis.script_load(_HIT_SCRIPT))
        opened = await asyncio.gather(
            *(retried(self._pool.get_connection) for _ in range(self._warm)), return_exceptions=True
        )
        for connection in opened:
            if not isinstance(connection, BaseException):
                await self._pool.release(connection)
        for failed in opened:
            if isinstance(failed, BaseException):
                raise failed

    async def close(self) -> None:
        """Close the connection pool, best effort: redis-py waits the connect timeout for each connection
        and raises when one runs over (a loaded machine), which at shutdown is no error of the app's and
        must not keep the shutdown hooks after this one from running; the connections go with the worker."""
        try:
            await self._redis.aclose(close_connection_pool=True)
        except Exception as exc:
            log.warning("the rate limit's Redis connections did not close (%s: %s); they are dropped "
                        "with the worker", type(exc).__name__, exc)


def client_key(scope: Scope) -> str | None:
    """Who is calling: ``client_id/sub`` of the authenticated principal (None when there is none)."""
    user = scope.get("user")
    sub = getattr(user, "sub", None)
    if not isinstance(sub, str):
        return None
    return f"{getattr(user, 'client_id', '')}/{sub}"


class RateLimiter:
    """A worker's per-client limit: counts in the shared ``counter``, in this worker's memory while that
    is unreachable. One for the whole app (every route's middleware shares it)."""

    def __init__(
        self,
        config: RateLimit,
        counter: Counter,
        *,
        clock: Callable[[], float] = time.time,
        retry_s: float = BACKOFF_S,
    ) -> None:
        self.config = config
        self.counter = counter
        self.clock = clock
        self.retry_s = retry_s
        self._local = MemoryCounter()  # while the shared store is down
        self._shared_again_at = float("-inf")
        self._reopening: asyncio.Task[None] | None = None

    @property
    def shared(self) -> bool:
        """Whether the next hit is counted in the shared store (False: in this worker, for now)."""
        return self.clock() >= self._shared_again_at

    async def start(self) -> None:
        """Open the shared store's connections before the worker serves (app startup). If it does not
        answer, the worker still starts: it counts alone, and asks the store again in the background
        every ``retry_s`` until it answers."""
        try:
            await self.counter.open()
        except Exception as exc:
            self._shared_again_at = float("inf")
            log.warning(
                "rate limit store unreachable at startup (%s: %s); this worker counts each client alone "
                "until it answers (asked again every %.0f s)", type(exc).__name__, exc, self.retry_s,
            )
            self._reopening = host_task(self._reopen())

    async def _reopen(self) -> None:
        while True:
            await asyncio.sleep(self.retry_s)
            try:
                await self.counter.open()
            except Exception as exc:
                log.debug("rate limit store still unreachable: %s: %s", type(exc).__name__, exc)
                continue
            self._shared_again_at = float("-inf")
            log.warning("rate limit store reachable; this worker counts in it again")
            return

    async def close(self) -> None:
        """Stop asking the store again and release its connections (app shutdown)."""
        if self._reopening is not None:
            self._reopening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reopening
            self._reopening = None
        await self.counter.close()

    async def check(self, key: str) -> None:
        """Count one request of client ``key``; raise 429 (with ``Retry-After``) past the limit."""
        size = self.config.window_seconds
        now = self.clock()
        window = int(now // size)
        if now < self._shared_again_at:
            count = await self._local.hit(key, window, size + 1)
        else:
            try:
                count = await self.counter.hit(key, window, size + 1)
            except Exception as exc:
                self._shared_again_at = now + BACKOFF_S
                _UNAVAILABLE(f"{type(exc).__name__}: {exc}")
                count = await self._local.hit(key, window, size + 1)
        if count > self.config.requests:
            retry_after = max(1, math.ceil((window + 1) * size - now))
            raise TooManyRequestsException(
                detail=f"more than {self.config.requests} requests in {size} s; retry after {retry_after} s",
                headers={"Retry-After": str(retry_after)},
            )


class RateLimitMiddleware:
    """ASGI middleware counting each client's ``/v1`` requests with the app's :class:`RateLimiter`."""

    def __init__(self, app: ASGIApp, *, limiter: RateLimiter) -> None:
        self.app = app
        self.config = limiter.config
        self._check = limiter.check

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse the request with 429 when its client's window is full; otherwise pass it on."""
        if self.config.enabled and scope["type"] == ScopeType.HTTP and scope["path"].startswith(PREFIX):
            key = client_key(scope)
            if key is not None:
                await self._check(key)
        await self.app(scope, receive, send)
