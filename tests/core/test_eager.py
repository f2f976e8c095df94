"""Eager first steps: what ``Eager.first_step`` and ``Eager.step`` report for a coroutine."""

from __future__ import annotations

import asyncio

import pytest
from fulcrum_core.dispatch.eager import Eager

pytestmark = [pytest.mark.anyio, pytest.mark.both_loops]


async def _returns(value: int) -> int:
    return value


async def _waits(value: int) -> int:
    await asyncio.sleep(0)
    return value


async def test_first_step_tells_a_return_from_a_suspension() -> None:
    """A coroutine that returns inline gives ``(True, result)``; one that waits gives ``(False, what it
    yielded)``, and the task taken for it goes on to its result; ``step`` raises the return as
    ``StopIteration``."""
    eager = Eager(asyncio.get_running_loop())
    assert eager.first_step(_returns(7)) == (True, 7)
    with pytest.raises(StopIteration) as stopped:
        eager.step(_returns(8))
    assert stopped.value.value == 8
    coro = _waits(9)
    ended, yielded = eager.first_step(coro)
    assert not ended
    assert await eager.take(coro, yielded) == 9
