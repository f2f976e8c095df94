"""Breaker openings shared by every worker through Redis.

Each worker keeps its own breakers (the hot path never waits for Redis). A breaker that opens in
one worker writes ``plugin:hook`` → when it will probe again (milliseconds since the epoch) into
one Redis hash; every worker reads that hash every ``breaker_share_seconds`` and opens its own
closed breaker of that plugin × hook for the time left. The other workers then stop calling a
failing plugin within a poll instead of each paying ``minimum_number_of_calls`` failures to learn
it. A breaker whose probes pass (HALF_OPEN → CLOSED) removes the entry; each worker still probes
on its own. Without Redis, or while it is down, each worker judges alone, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio

from fulcrum_core.dispatch.breaker import BreakerState, StateTransition
from fulcrum_core.dispatch.resilience import Guards

__all__ = ["SharedBreakers"]

log = logging.getLogger("fulcrum.dispatch")

_STALE_S = 3600.0
"""Entries this long past their time are deleted by whichever worker reads them."""


class SharedBreakers:
    """Publishes this worker's breaker openings and applies the other workers' (see the module)."""

    def __init__(
        self,
        redis_url: str,
        guards: Guards,
        *,
        poll_seconds: float = 1.0,
        key: str = "fulcrum:breakers:open",
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._redis: Any = redis.asyncio.Redis.from_url(
            redis_url, socket_timeout=0.5, socket_connect_timeout=0.5, decode_responses=True
        )
        self._guards = guards
        self._poll_s = poll_seconds
        self._key = key
        self._wall = wall
        self._applying = False
        self._down = False
        self._task: asyncio.Task[None] | None = None
        self._writes: set[asyncio.Task[None]] = set()
        guards.add_listener(self._on_transition)

    # --- publishing --------------------------------------------------------------------------------

    def _on_transition(self, event: StateTransition) -> None:
        if self._applying:
            return  # an opening read from Redis is not published again
        if event.to_state is BreakerState.OPEN:
            wait = self._guards.config.wait_duration_in_open_state_s
            until_ms = int((self._wall() + wait) * 1000)
            self._write(self._redis.hset(self._key, event.breaker, until_ms))
        elif event.to_state is BreakerState.CLOSED and event.from_state is BreakerState.HALF_OPEN:
            self._write(self._redis.hdel(self._key, event.breaker))

    def _write(self, command: Awaitable[Any]) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a breaker driven from plain code): nothing to share with
            if asyncio.iscoroutine(command):
                command.close()
            return
        task = loop.create_task(self._quietly(command))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _quietly(self, command: Awaitable[Any]) -> None:
        try:
            await command
        except Exception as exc:
            log.warning("could not share a breaker change through Redis: %s", exc)

    async def flush(self) -> None:
        """Wait for the writes started so far (shutdown, tests)."""
        while self._writes:
            await asyncio.gather(*list(self._writes), return_exceptions=True)

    # --- applying ----------------------------------------------------------------------------------

    async def sync(self) -> list[str]:
        """Open this worker's closed breakers that another worker opened; the names it opened."""
        entries: dict[str, str] = await self._redis.hgetall(self._key)
        now = self._wall()
        opened: list[str] = []
        stale: list[str] = []
        for name, value in entries.items():
            plugin, _, hook = name.partition(":")
            try:
                left = int(value) / 1000 - now
                guard = self._guards.get(plugin, hook) if plugin and hook else None
            except (ValueError, AttributeError):  # not a number, or not a hook: not ours to act on
                continue
            if left <= 0:
                if -left > _STALE_S:
                    stale.append(name)
                continue
            if guard is None:
                continue
            self._applying = True
            try:
                if guard.breaker.open_for(left):
                    opened.append(name)
            finally:
                self._applying = False
        if stale:
            await self._redis.hdel(self._key, *stale)
        for name in opened:
            log.warning("breaker %s opened here too: another worker's breaker opened", name)
        return opened

    async def _run(self) -> None:
        while True:
            try:
                await self.sync()
            except Exception as exc:
                if not self._down:
                    log.warning("shared breaker state unavailable, each worker judges alone: %s", exc)
                self._down = True
            else:
                if self._down:
                    log.warning("shared breaker state available again")
                self._down = False
            await asyncio.sleep(self._poll_s)

    # --- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start reading the other workers' openings (app startup)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop reading, finish pending writes, close the connections (app shutdown)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.flush(), 1.0)
        await self._redis.aclose()
