"""Run a coroutine eagerly: drive it to its first suspension inline, and only then hand it to a task.

Most plugin coroutines never wait (they compute from the context and return), and creating an
asyncio task plus a timeout for each of them costs more than the plugin's work. ``start`` sends the
first ``None`` in the caller's stack frame: a coroutine that returns without suspending produces its
result right there; one that does suspend is resumed inside a task with :func:`resume`, which hands
the already-yielded future to the task exactly as the coroutine itself would have.
"""

from __future__ import annotations

from collections.abc import Coroutine, Generator
from typing import Any

__all__ = ["resume"]


class _Resume:
    """An awaitable that continues ``coro`` after it yielded ``first`` (what ``yield from`` does)."""

    __slots__ = ("coro", "first")

    def __init__(self, coro: Coroutine[Any, Any, Any], first: Any) -> None:
        self.coro = coro
        self.first = first

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, to_yield = self.coro, self.first
        self.first = None  # the task owns the yielded future from here on
        while True:
            try:
                sent = yield to_yield
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # CancelledError on timeout: deliver it to the plugin
                try:
                    to_yield = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    to_yield = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


async def resume(coro: Coroutine[Any, Any, Any], first: Any) -> Any:
    """The rest of ``coro``, which already yielded ``first`` when it was sent its first ``None``."""
    return await _Resume(coro, first)
