"""The bulkhead: a non-blocking concurrency cap that rejects at once and always gives places back."""

from __future__ import annotations

import asyncio

import pytest
from fulcrum_core.dispatch.bulkhead import Bulkhead


def test_cap_is_enforced_and_leave_frees_a_place() -> None:
    """The call past the cap is rejected and counted; leaving lets the next one in."""
    bulkhead = Bulkhead(2, name="demo:search")
    assert bulkhead.try_enter()
    assert bulkhead.try_enter()
    assert not bulkhead.try_enter()
    assert (bulkhead.active, bulkhead.available, bulkhead.rejected) == (2, 0, 1)
    bulkhead.leave()
    assert bulkhead.try_enter()
    assert bulkhead.active == 2


def test_leave_without_enter_is_a_bug() -> None:
    """An unmatched leave() raises instead of silently raising the cap."""
    bulkhead = Bulkhead(1, name="demo:search")
    with pytest.raises(RuntimeError, match="demo:search"):
        bulkhead.leave()
    assert bulkhead.try_enter()
    assert not bulkhead.try_enter()


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "3"])
def test_bad_cap_is_refused(bad: object) -> None:
    """A cap that is not a positive integer is refused at construction."""
    with pytest.raises(ValueError, match="max_concurrent"):
        Bulkhead(bad)  # type: ignore[arg-type]


def test_context_manager_releases_on_exception() -> None:
    """A call that raises inside ``entered()`` still gives its place back."""
    bulkhead = Bulkhead(1)

    def failing_call() -> None:
        with bulkhead.entered() as ok:
            assert ok
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        failing_call()
    assert bulkhead.active == 0
    with bulkhead.entered() as ok:
        assert ok
        assert bulkhead.active == 1
    assert bulkhead.active == 0


def test_context_manager_reports_full_without_touching_others() -> None:
    """``entered()`` yields False when full, and leaving it does not free someone else's place."""
    bulkhead = Bulkhead(1)
    assert bulkhead.try_enter()
    with bulkhead.entered() as ok:
        assert not ok
    assert bulkhead.active == 1
    assert bulkhead.rejected == 1


@pytest.mark.anyio
async def test_cap_holds_across_concurrent_tasks() -> None:
    """Hanging coroutines hold their places; later ones are rejected at once, not queued."""
    bulkhead = Bulkhead(3)
    gate = asyncio.Event()
    all_arrived = asyncio.Event()
    admitted: list[int] = []
    arrived = 0

    async def plugin_call(i: int) -> None:
        nonlocal arrived
        with bulkhead.entered() as ok:
            arrived += 1
            if arrived == 10:
                all_arrived.set()
            if not ok:
                return
            admitted.append(i)
            await gate.wait()

    tasks = [asyncio.create_task(plugin_call(i)) for i in range(10)]
    await all_arrived.wait()
    assert admitted == [0, 1, 2]
    assert bulkhead.rejected == 7
    gate.set()
    await asyncio.gather(*tasks)
    assert bulkhead.active == 0
