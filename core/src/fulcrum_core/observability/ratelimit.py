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
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any, Protocol

from litestar.enums import ScopeType
from litestar.exceptions import TooManyRequestsException
from litestar.types import ASGIApp, Receive, Scope, Send

from fulcrum_core.observability.throttle import ThrottledWarning
from fulcrum_core.settings import RateLimit

__all__ = ["MAX_CONNECTIONS", "Counter", "MemoryCounter", "RateLimitMiddleware", "RedisCounter", "client_key"]

log = logging.getLogger("fulcrum.ratelimit")

PREFIX = "/v1/"

MAX_CONNECTIONS = 100
"""Connections to Redis per worker (redis-py's default); a hit beyond them waits for one."""

BACKOFF_S = 5.0
"""After Redis failed, how long this worker counts on its own before asking Redis again."""

_UNAVAILABLE = ThrottledWarning(log, "rate limit store unavailable; counting in this worker for a while")


class Counter(Protocol):
    """Counts hits of a key in numbered windows."""

    async def hit(self, key: str, window: int, ttl_s: int) -> int:
        """Add one hit to ``key`` in window number ``window`` and return the window's count."""
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
        self._prefix = prefix
        # EVALSHA, loading the script again if the server lost it (a restart, SCRIPT FLUSH).
        self._hit: Any = self._redis.register_script(_HIT_SCRIPT)

    async def hit(self, key: str, window: int, ttl_s: int) -> int:
        """``INCR`` the window's key and set its expiry, atomically (one Lua script)."""
        count = await self._hit(keys=[f"{self._prefix}{key}:{window}"], args=[ttl_s])
        return int(count)

    async def close(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose(close_connection_pool=True)


def client_key(scope: Scope) -> str | None:
    """Who is calling: ``client_id/sub`` of the authenticated principal (None when there is none)."""
    user = scope.get("user")
    sub = getattr(user, "sub", None)
    if not isinstance(sub, str):
        return None
    return f"{getattr(user, 'client_id', '')}/{sub}"


class RateLimitMiddleware:
    """ASGI middleware counting each client's ``/v1`` requests (see the module docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        config: RateLimit,
        counter: Counter,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self.config = config
        self.counter = counter
        self.clock = clock
        self._local = MemoryCounter()  # while the shared store is down
        self._shared_again_at = float("-inf")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse the request with 429 when its client's window is full; otherwise pass it on."""
        if self.config.enabled and scope["type"] == ScopeType.HTTP and scope["path"].startswith(PREFIX):
            key = client_key(scope)
            if key is not None:
                await self._check(key)
        await self.app(scope, receive, send)

    async def _check(self, key: str) -> None:
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
