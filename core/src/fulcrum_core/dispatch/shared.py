"""Breaker openings shared by every worker through Redis.

Each worker keeps its own breakers (the hot path never waits for Redis). A breaker that opens in
one worker writes ``plugin:hook`` → when it will probe again (milliseconds since the epoch) into
one Redis hash; every worker reads that hash every ``breaker_share_seconds`` and opens its own
closed breaker of that plugin × hook for the time left. The other workers then stop calling a
failing plugin within a poll instead of each paying ``minimum_number_of_calls`` failures to learn
it. Each worker still probes on its own. An entry only ever moves later (a worker whose probe
failed extends it; one whose probe passed never erases another's newer opening), entries past
their time are deleted by whoever sees them, and an entry with less time left than the hook's
deadline is ignored (opening that briefly would let a call already in flight count as a probe).
Openings are wall-clock times: a worker never opens for longer than its configured wait, and one
further ahead than the wait allows (a worker's clock is off) is ignored with a warning.
Only plugins this worker runs are acted on. Without Redis, or while it is down, each worker
judges alone, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio
from fulcrum_sdk.hookspecs import HOOK_NAMES

from fulcrum_core.dispatch.breaker import BreakerState, StateTransition
from fulcrum_core.dispatch.leftovers import host_task
from fulcrum_core.dispatch.resilience import Guards

__all__ = ["SharedBreakers"]

log = logging.getLogger("fulcrum.dispatch")

_STALE_S = 3600.0
"""Entries this long past their time are deleted by whichever worker reads them."""

_SKEW_S = 5.0
"""How far workers' wall clocks may disagree. An opening with more time left than the open wait plus
this was written by (or is read by) a worker whose clock is off: it is ignored, never obeyed for hours."""

# Set the opening only when it is later than the one stored.
_PUBLISH = """
local stored = tonumber(redis.call('HGET', KEYS[1], ARGV[1]))
if stored == nil or stored < tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  return 1
end
return 0
"""

# Delete the opening only when its time has passed (never another worker's newer one).
_CLEAR = """
local stored = redis.call('HGET', KEYS[1], ARGV[1])
if stored and (tonumber(stored) == nil or tonumber(stored) <= tonumber(ARGV[2])) then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 1
end
return 0
"""


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
        known: Callable[[str], bool] = lambda plugin_id: True,
    ) -> None:
        self._redis: Any = redis.asyncio.Redis.from_url(
            redis_url, socket_timeout=0.5, socket_connect_timeout=0.5, decode_responses=True
        )
        self._guards = guards
        self._poll_s = poll_seconds
        self._key = key
        self._wall = wall
        self._known = known
        self._publish: Any = self._redis.register_script(_PUBLISH)
        self._clear: Any = self._redis.register_script(_CLEAR)
        self._applying = False
        self._stopped = False
        self._down = False
        self._task: asyncio.Task[None] | None = None
        self._writes: set[asyncio.Task[None]] = set()
        self._skewed: set[str] = set()
        guards.add_listener(self._on_transition)

    # --- publishing --------------------------------------------------------------------------------

    def _on_transition(self, event: StateTransition) -> None:
        if self._applying or self._stopped:
            return  # an opening read from Redis is not published again
        now = self._wall()
        if event.to_state is BreakerState.OPEN:
            plugin, _, hook = event.breaker.partition(":")
            wait = self._guards.get(plugin, hook).breaker.config.wait_duration_in_open_state_s  # per hook
            until_ms = int((now + wait) * 1000)
            self._write(self._publish(keys=[self._key], args=[event.breaker, until_ms]))
        elif event.to_state is BreakerState.CLOSED and event.from_state is BreakerState.HALF_OPEN:
            self._write(self._clear(keys=[self._key], args=[event.breaker, int(now * 1000)]))

    def _write(self, command: Awaitable[Any]) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a breaker driven from plain code): nothing to share with
            if asyncio.iscoroutine(command):
                command.close()
            return
        task = host_task(self._quietly(command), loop=loop)
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _quietly(self, command: Awaitable[Any]) -> None:
        try:
            await command
        except Exception as exc:
            if not self._down:
                log.warning("shared breaker state unavailable, each worker judges alone: %s", exc)
            self._down = True

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
            try:
                left = int(value) / 1000 - now
            except ValueError:
                continue  # not written by a worker: not ours to act on
            if left <= 0:
                if -left > _STALE_S:
                    stale.append(name)
                continue
            plugin, _, hook = name.partition(":")
            if hook not in HOOK_NAMES or not self._known(plugin):
                continue  # another deployment's plugin, or garbage: no breaker is made for it
            breaker = self._guards.get(plugin, hook).breaker
            if left < self._guards.deadline_s(hook):
                continue  # about to end; a call in flight could be taken for a probe
            wait = breaker.config.wait_duration_in_open_state_s
            if left > wait + _SKEW_S:
                self._warn_skewed(name, left - wait)
                continue
            self._applying = True
            try:
                if breaker.open_for(min(left, wait)):
                    opened.append(name)
            finally:
                self._applying = False
        if stale:
            await self._redis.hdel(self._key, *stale)
        for name in opened:
            log.warning("breaker %s opened here too: another worker's breaker opened", name)
        return opened

    def _warn_skewed(self, name: str, ahead_s: float) -> None:
        """Warn (once per entry) about an opening further ahead than any worker can write."""
        if name in self._skewed:
            return
        if len(self._skewed) >= 1024:
            self._skewed.clear()
        self._skewed.add(name)
        log.warning(
            "breaker %s: ignored an opening %.0f s further ahead than the open wait allows; "
            "a worker's wall clock is off",
            name,
            ahead_s,
        )

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
            self._task = host_task(self._run())

    async def stop(self) -> None:
        """Stop reading and publishing, finish pending writes, close the connections (app shutdown)."""
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.flush(), 1.0)
        try:  # best effort, as the rate limit's: a connection that does not close in time is dropped
            await self._redis.aclose()
        except Exception as exc:
            log.warning("the shared breakers' Redis connections did not close (%s: %s); they are dropped "
                        "with the worker", type(exc).__name__, exc)
