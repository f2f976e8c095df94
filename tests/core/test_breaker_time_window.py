"""The time-based window: the breaker judges the calls of the last N seconds, on a virtual clock."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from fulcrum_core.dispatch.breaker import (
    MAX_TIME_WINDOW_S,
    BreakerConfig,
    BreakerState,
    CircuitBreaker,
    StateTransition,
    TimeWindowBreaker,
    new_breaker,
)
from fulcrum_core.dispatch.clock import VirtualClock
from fulcrum_core.dispatch.dispatcher import Dispatcher
from fulcrum_core.settings import Settings, load_settings
from fulcrum_sdk import nonblocking

from tests.core.test_breaker import FAST, SLOW, SMALL, call
from tests.core.test_dispatch_guard import _loaded, _search

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN

TEN_SECONDS = msgspec.structs.replace(
    SMALL, sliding_window_type="time_based", minimum_number_of_calls=4, permitted_calls_in_half_open=2
)
"""The count-based tests' breaker, judging the last ten seconds' calls from the fourth one on."""


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(start=1000.0)


def _breaker(clock: VirtualClock, config: BreakerConfig = TEN_SECONDS) -> CircuitBreaker:
    return new_breaker("p:home_slot_offers", config, clock=clock)


def _fail(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        assert call(breaker, ok=False)


def _succeed(breaker: CircuitBreaker, times: int, duration: float = FAST) -> None:
    for _ in range(times):
        assert call(breaker, duration=duration)


def test_the_factory_picks_the_window_by_its_type(clock: VirtualClock) -> None:
    """Count-based stays the plain breaker; time-based is the bucketed one."""
    assert type(_breaker(clock)) is TimeWindowBreaker
    counted = msgspec.structs.replace(TEN_SECONDS, sliding_window_type="count_based")
    assert type(_breaker(clock, counted)) is CircuitBreaker


def test_failures_within_the_window_open_it(clock: VirtualClock) -> None:
    """Two failures and two successes inside ten seconds: 50 % at the minimum of four calls."""
    breaker = _breaker(clock)
    _succeed(breaker, 2)
    clock.advance(3)
    _fail(breaker, 1)
    assert breaker.state is CLOSED  # three calls: under the minimum
    clock.advance(3)
    _fail(breaker, 1)
    assert breaker.state is OPEN


def test_failures_older_than_the_window_no_longer_count(clock: VirtualClock) -> None:
    """The same four outcomes spread over more than the window: the failures have aged out when the
    successes come, where a count-based window of four would open on them."""
    counted = msgspec.structs.replace(TEN_SECONDS, sliding_window_type="count_based", sliding_window_size=4)
    timed, plain = _breaker(clock), _breaker(clock, counted)
    for breaker in (timed, plain):
        _fail(breaker, 2)
    clock.advance(10)  # the failures' second has left the ten-second window
    for breaker in (timed, plain):
        _succeed(breaker, 2)
    assert plain.state is OPEN
    assert timed.state is CLOSED
    assert timed.snapshot().buffered_calls == 2


def test_buckets_leave_the_window_one_second_at_a_time(clock: VirtualClock) -> None:
    """A call per second: after the window's length, each new second drops exactly the oldest."""
    breaker = _breaker(clock, msgspec.structs.replace(TEN_SECONDS, minimum_number_of_calls=100))
    for _ in range(10):
        _fail(breaker, 1)
        clock.advance(1)
    snap = breaker.snapshot()
    assert (snap.buffered_calls, snap.failed_calls) == (9, 9)  # 1000..1009, the window 1001..1010
    _succeed(breaker, 1)
    snap = breaker.snapshot()
    assert (snap.buffered_calls, snap.failed_calls) == (10, 9)
    clock.advance(4.5)  # now 1014.5: seconds 1001..1004 have left
    snap = breaker.snapshot()
    assert (snap.buffered_calls, snap.failed_calls) == (6, 5)


def test_a_quiet_spell_empties_the_window(clock: VirtualClock) -> None:
    """No calls for longer than the window: nothing is left to judge by."""
    breaker = _breaker(clock)
    _fail(breaker, 3)
    clock.advance(60)
    assert breaker.snapshot().buffered_calls == 0
    _fail(breaker, 1)
    assert breaker.state is CLOSED  # one call in the window, under the minimum


def test_the_minimum_is_not_capped_by_the_window(clock: VirtualClock) -> None:
    """Unlike a count-based window, a minimum above the window's size still holds: ten seconds, a
    minimum of twelve calls."""
    breaker = _breaker(clock, msgspec.structs.replace(TEN_SECONDS, minimum_number_of_calls=12))
    _fail(breaker, 11)
    assert breaker.state is CLOSED
    _fail(breaker, 1)
    assert breaker.state is OPEN


def test_rates_can_cross_as_good_calls_age_out(clock: VirtualClock) -> None:
    """Successes early in the window, failures later: once the successes leave, the next call (of any
    kind) finds the failure rate over the threshold."""
    breaker = _breaker(clock)
    _succeed(breaker, 3)
    clock.advance(5)
    _fail(breaker, 2)  # 2 of 5: under 50 %
    assert breaker.state is CLOSED
    clock.advance(6)  # the successes' second has left; the failures' has not
    _succeed(breaker, 1)  # 2 of 3 failed, but three is under the minimum of four
    assert breaker.state is CLOSED
    _succeed(breaker, 1)  # 2 of 4: 50 %
    assert breaker.state is OPEN


def test_slow_calls_open_it_too(clock: VirtualClock) -> None:
    """Half the window's calls over the slow-call duration, none failed."""
    breaker = _breaker(clock)
    _succeed(breaker, 2)
    _succeed(breaker, 1, SLOW)
    assert breaker.state is CLOSED
    _succeed(breaker, 1, SLOW)
    assert breaker.state is OPEN
    snap = breaker.snapshot()
    assert snap.state is OPEN


def test_half_open_probes_then_a_fresh_window(clock: VirtualClock) -> None:
    """Open, wait, two good probes close it, and the window starts empty: the failures that opened it
    are not judged again even though they are still inside the ten seconds."""
    events: list[StateTransition] = []
    breaker = new_breaker(
        "p:h", msgspec.structs.replace(TEN_SECONDS, wait_duration_in_open_state_s=5.0), clock=clock,
        listeners=[events.append],
    )
    _fail(breaker, 4)
    assert breaker.state is OPEN
    assert not breaker.try_acquire()
    clock.advance(5)
    _succeed(breaker, 2)  # the probes
    assert breaker.state is CLOSED
    path = [(e.from_state, e.to_state) for e in events]
    assert path == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED)]
    assert breaker.snapshot().buffered_calls == 0
    _fail(breaker, 1)
    _succeed(breaker, 2)
    assert breaker.state is CLOSED  # one failure in three


def test_failed_probes_reopen_it(clock: VirtualClock) -> None:
    """HALF_OPEN judges its probes as the count-based breaker does."""
    breaker = _breaker(clock)
    _fail(breaker, 4)
    clock.advance(30)
    _fail(breaker, 1)
    _succeed(breaker, 1)
    assert breaker.state is OPEN


def test_reset_clears_the_buckets(clock: VirtualClock) -> None:
    """The operator's reset empties the window."""
    breaker = _breaker(clock)
    _fail(breaker, 3)
    breaker.reset()
    assert breaker.snapshot().buffered_calls == 0
    _fail(breaker, 3)
    assert breaker.state is CLOSED


def test_the_settings_file_selects_it(tmp_path: object) -> None:
    """``[breaker] sliding_window_type = "time_based"`` in the TOML file reaches every breaker."""
    from pathlib import Path

    from fulcrum_core.dispatch.resilience import Guards

    config = Path(str(tmp_path)) / "fulcrum.toml"
    config.write_text('[breaker]\nsliding_window_type = "time_based"\nsliding_window_size = 60\n')
    settings = load_settings(environ={"FULCRUM_CONFIG": str(config)})
    assert settings.breaker.sliding_window_type == "time_based"
    guards = Guards(settings.breaker, lambda hook: 0.15, settings.bulkhead_size)
    assert type(guards.get("p", "home_slot_offers").breaker) is TimeWindowBreaker


def test_an_unknown_window_type_is_refused(tmp_path: object) -> None:
    """A misspelt type names the field instead of silently counting calls."""
    from pathlib import Path

    config = Path(str(tmp_path)) / "fulcrum.toml"
    config.write_text('[breaker]\nsliding_window_type = "time"\n')
    with pytest.raises(Exception, match="sliding_window_type"):
        load_settings(environ={"FULCRUM_CONFIG": str(config)})


def test_a_call_just_inside_and_one_just_outside_the_window(clock: VirtualClock) -> None:
    """At 1010.0 the window is the seconds 1001..1010: a call at 1000.999 has left it, one at 1001.0
    has not."""
    breaker = _breaker(clock, msgspec.structs.replace(TEN_SECONDS, minimum_number_of_calls=100))
    clock.advance(0.999)
    _fail(breaker, 1)  # 1000.999
    clock.advance(0.001)
    _fail(breaker, 1)  # 1001.0
    clock.advance(9.0)
    assert breaker.snapshot().buffered_calls == 1  # 1010.0
    clock.advance(14.999)
    _succeed(breaker, 1)  # 1024.999, after a gap between one and two windows: only this call is left
    assert breaker.snapshot().buffered_calls == 1


def test_seconds_are_counted_down_from_negative_readings_too() -> None:
    """A clock (a test's) reading -0.5 then 0.5 crosses a second boundary: floor, not truncation."""
    clock = VirtualClock(start=-0.5)
    breaker = _breaker(clock, msgspec.structs.replace(TEN_SECONDS, sliding_window_size=1))
    _fail(breaker, 1)
    clock.advance(1.0)
    assert breaker.snapshot().buffered_calls == 0


def test_open_probe_fail_open_again_then_close(clock: VirtualClock) -> None:
    """OPEN, bad probes, OPEN again, good probes: CLOSED on an empty window; every transition seen."""
    events: list[StateTransition] = []
    breaker = new_breaker("p:h", TEN_SECONDS, clock=clock, listeners=[events.append])
    _fail(breaker, 4)
    clock.advance(30)
    _fail(breaker, 2)
    assert breaker.state is OPEN
    clock.advance(30)
    _succeed(breaker, 2)
    assert breaker.state is CLOSED
    assert [(e.from_state, e.to_state) for e in events] == [
        (CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED)
    ]
    assert breaker.snapshot().buffered_calls == 0


def test_operator_controls_work_on_it(clock: VirtualClock) -> None:
    """Another worker's opening (open_for), trip and reset behave as on the count-based one."""
    breaker = _breaker(clock)
    _fail(breaker, 2)
    assert breaker.open_for(5.0)
    assert not breaker.try_acquire()
    clock.advance(5)
    _succeed(breaker, 2)
    assert breaker.state is CLOSED
    assert breaker.trip()
    assert not breaker.try_acquire()
    assert breaker.snapshot().state is BreakerState.OPEN
    breaker.reset()
    assert breaker.state is CLOSED
    assert breaker.snapshot().buffered_calls == 0


def test_a_time_window_longer_than_an_hour_is_refused() -> None:
    """Seconds, at most 3600; a count-based window of that many calls is another matter."""
    with pytest.raises(ValueError, match="at most 3600"):
        BreakerConfig(sliding_window_type="time_based", sliding_window_size=MAX_TIME_WINDOW_S + 1)
    assert BreakerConfig(sliding_window_type="time_based", sliding_window_size=MAX_TIME_WINDOW_S)
    assert BreakerConfig(sliding_window_size=MAX_TIME_WINDOW_S + 1)


@pytest.mark.anyio
async def test_the_dispatcher_opens_it_only_on_recent_failures(settings: Settings, kit: Any) -> None:
    """Through the dispatcher's fast path: a failure, eleven quiet seconds, a failure (one call in the
    window: closed), a third failure (two: open)."""

    @nonblocking
    def down(ctx: Any, query: str) -> Any:
        raise RuntimeError("down")

    conf = msgspec.structs.replace(
        settings,
        breaker=BreakerConfig(
            sliding_window_type="time_based", sliding_window_size=10, minimum_number_of_calls=2
        ),
    )
    clock = VirtualClock()
    dispatcher = Dispatcher(conf, clock=clock)
    plugins = _loaded(conf, kit.plugin("down", search=down))
    try:
        await _search(dispatcher, kit, plugins)
        clock.advance(11)
        await _search(dispatcher, kit, plugins)
        assert not dispatcher.breaker_open("down", "search")
        await _search(dispatcher, kit, plugins)
        assert dispatcher.breaker_open("down", "search")
        assert type(dispatcher.resilience.get("down", "search").breaker) is TimeWindowBreaker
    finally:
        dispatcher.close()
