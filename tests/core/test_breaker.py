"""The circuit breaker's state machine, driven on a virtual clock: every transition, no sleeps."""

from __future__ import annotations

import logging
import math

import msgspec
import pytest
from fulcrum_core.dispatch.breaker import (
    BreakerConfig,
    BreakerState,
    CircuitBreaker,
    StateTransition,
)
from fulcrum_core.dispatch.clock import MONOTONIC, Clock, MonotonicClock, VirtualClock

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN
FAST = 0.01  # well under the slow-call duration below
SLOW = 0.5  # over it

SMALL = BreakerConfig(
    sliding_window_size=10,
    minimum_number_of_calls=10,
    failure_rate_threshold=50.0,
    slow_call_rate_threshold=50.0,
    slow_call_duration_s=0.15,
    wait_duration_in_open_state_s=30.0,
    permitted_calls_in_half_open=3,
    max_wait_in_half_open_s=60.0,
)


class Recorder:
    """A transition listener that keeps every event it is handed."""

    def __init__(self) -> None:
        self.events: list[StateTransition] = []

    def __call__(self, event: StateTransition) -> None:
        self.events.append(event)

    @property
    def path(self) -> list[tuple[BreakerState, BreakerState]]:
        return [(e.from_state, e.to_state) for e in self.events]


@pytest.fixture
def clock() -> VirtualClock:
    """A clock that moves only when a test advances it."""
    return VirtualClock(start=1000.0)


@pytest.fixture
def recorder() -> Recorder:
    """Collects the breaker's transitions."""
    return Recorder()


@pytest.fixture
def breaker(clock: VirtualClock, recorder: Recorder) -> CircuitBreaker:
    """A breaker with a 10-call window, 50 % thresholds, 30 s open and 3 probes."""
    return CircuitBreaker("demo:home_slot_offers", SMALL, clock=clock, listeners=[recorder])


def call(breaker: CircuitBreaker, *, ok: bool = True, duration: float = FAST) -> bool:
    """Run one call through the breaker's protocol; False when the breaker rejected it."""
    if not breaker.try_acquire():
        return False
    if ok:
        breaker.on_success(duration)
    else:
        breaker.on_error(duration)
    return True


def trip(breaker: CircuitBreaker) -> None:
    """Open a CLOSED breaker with a window full of failures."""
    for _ in range(SMALL.sliding_window_size):
        call(breaker, ok=False)
    assert breaker.state is OPEN


def to_half_open(breaker: CircuitBreaker, clock: VirtualClock) -> None:
    """Open the breaker, let the wait pass, and take the first probe (left in flight)."""
    trip(breaker)
    clock.advance(SMALL.wait_duration_in_open_state_s)
    assert breaker.try_acquire()
    assert breaker.state is HALF_OPEN


# ---- CLOSED ---------------------------------------------------------------------------------------


def test_new_breaker_is_closed_and_permits_calls(breaker: CircuitBreaker, recorder: Recorder) -> None:
    """A fresh breaker is CLOSED, lets every call through and reports no transition."""
    assert breaker.state is CLOSED
    assert all(call(breaker) for _ in range(100))
    assert recorder.events == []


def test_closed_opens_when_failure_rate_reaches_threshold(
    breaker: CircuitBreaker, recorder: Recorder
) -> None:
    """Five failures in ten calls (50 %, equal to the threshold) opens the breaker on the tenth."""
    for _ in range(5):
        call(breaker)
    for _ in range(4):
        call(breaker, ok=False)
    assert breaker.state is CLOSED
    call(breaker, ok=False)
    assert breaker.state is OPEN
    assert recorder.path == [(CLOSED, OPEN)]


def test_closed_stays_closed_just_under_failure_threshold(breaker: CircuitBreaker) -> None:
    """Four failures in ten calls (40 %) leaves the breaker CLOSED."""
    for i in range(10):
        call(breaker, ok=i % 5 not in (0, 1))
    assert breaker.state is CLOSED
    assert breaker.snapshot().failure_rate == 40.0


def test_closed_opens_when_slow_call_rate_reaches_threshold(
    breaker: CircuitBreaker, recorder: Recorder
) -> None:
    """Calls that succeed but take longer than the slow duration open the breaker by slow-call rate."""
    for _ in range(5):
        call(breaker, duration=FAST)
    for _ in range(4):
        call(breaker, duration=SLOW)
    assert breaker.state is CLOSED
    call(breaker, duration=SLOW)
    assert breaker.state is OPEN
    snap = breaker.snapshot()
    assert (snap.failed_calls, snap.slow_calls) == (0, 5)
    assert recorder.path == [(CLOSED, OPEN)]


def test_slow_failures_count_as_failed_and_slow(breaker: CircuitBreaker) -> None:
    """An error slower than the threshold adds to both the failure and the slow-call counts."""
    call(breaker, ok=False, duration=SLOW)
    snap = breaker.snapshot()
    assert (snap.buffered_calls, snap.failed_calls, snap.slow_calls) == (1, 1, 1)


def test_call_exactly_at_slow_duration_is_not_slow(breaker: CircuitBreaker) -> None:
    """Only a call strictly longer than ``slow_call_duration_s`` is slow, as in resilience4j."""
    call(breaker, duration=SMALL.slow_call_duration_s)
    call(breaker, duration=math.nextafter(SMALL.slow_call_duration_s, 1.0))
    assert breaker.snapshot().slow_calls == 1


def test_a_call_cut_off_at_its_deadline_is_failed_and_slow(breaker: CircuitBreaker) -> None:
    """A timeout at a deadline equal to the slow duration is slow too (the call never ended, so it ran
    longer); one cut off sooner, by a shorter deadline, is only failed."""
    breaker.on_timeout(SMALL.slow_call_duration_s)
    breaker.on_timeout(SMALL.slow_call_duration_s / 2)
    snap = breaker.snapshot()
    assert (snap.buffered_calls, snap.failed_calls, snap.slow_calls) == (2, 2, 1)


def test_one_timeout_in_ten_trips_a_ten_percent_slow_threshold(clock: VirtualClock) -> None:
    """A slow-call rate threshold is met exactly: 1 timeout in 10 calls is 10 %, and a 10 % threshold
    opens the breaker even when the failure threshold is 100 %."""
    config = msgspec.structs.replace(SMALL, failure_rate_threshold=100.0, slow_call_rate_threshold=10.0)
    breaker = CircuitBreaker("b", config, clock=clock)
    for _ in range(9):
        call(breaker)
    assert breaker.try_acquire()
    breaker.on_timeout(config.slow_call_duration_s)
    assert breaker.state is OPEN


def test_no_decision_below_minimum_number_of_calls(clock: VirtualClock, recorder: Recorder) -> None:
    """Nine failures out of nine do not open a breaker whose minimum is ten; the tenth does."""
    config = msgspec.structs.replace(SMALL, sliding_window_size=20, minimum_number_of_calls=10)
    breaker = CircuitBreaker("p:h", config, clock=clock, listeners=[recorder])
    for _ in range(9):
        call(breaker, ok=False, duration=SLOW)
    assert breaker.state is CLOSED
    snap = breaker.snapshot()
    assert (snap.failure_rate, snap.slow_call_rate) == (None, None)
    assert recorder.events == []
    call(breaker, ok=False)
    assert breaker.state is OPEN


def test_good_call_reaching_the_minimum_still_judges_earlier_failures(breaker: CircuitBreaker) -> None:
    """Nine failures then a success (90 %) open the breaker when the tenth call reaches the minimum."""
    for _ in range(9):
        call(breaker, ok=False)
    call(breaker)
    assert breaker.state is OPEN


def test_full_window_is_rejudged_when_a_slow_call_replaces_a_failure(breaker: CircuitBreaker) -> None:
    """A slow success pushing out a failure lowers the failure rate but can still trip the slow rate."""
    for _ in range(4):
        call(breaker, ok=False)
    for _ in range(4):
        call(breaker, duration=SLOW)
    call(breaker)
    call(breaker)
    assert breaker.state is CLOSED  # 40 % failed, 40 % slow
    call(breaker, duration=SLOW)  # pushes out the oldest failure: 30 % failed, 50 % slow
    assert breaker.state is OPEN


def test_minimum_larger_than_window_acts_as_window_size(clock: VirtualClock) -> None:
    """A minimum above the window size is clamped to it, so a full window of failures still opens."""
    config = msgspec.structs.replace(SMALL, sliding_window_size=4, minimum_number_of_calls=100)
    breaker = CircuitBreaker("p:h", config, clock=clock)
    for _ in range(4):
        call(breaker, ok=False)
    assert breaker.state is OPEN


def test_window_forgets_calls_older_than_its_size(breaker: CircuitBreaker) -> None:
    """Only the last N calls count: old failures slide out, and new ones are judged on their own."""
    for _ in range(4):
        call(breaker, ok=False, duration=SLOW)
    for _ in range(16):
        call(breaker)
    snap = breaker.snapshot()
    assert (snap.buffered_calls, snap.failed_calls, snap.slow_calls) == (10, 0, 0)
    for _ in range(4):
        call(breaker, ok=False)
    assert breaker.state is CLOSED  # 4 of the last 10; the 4 older failures are forgotten
    call(breaker, ok=False)
    assert breaker.state is OPEN


# ---- OPEN -----------------------------------------------------------------------------------------


def test_open_rejects_until_the_wait_has_passed(breaker: CircuitBreaker, clock: VirtualClock) -> None:
    """While OPEN every call is rejected and counted, right up to the end of the wait."""
    trip(breaker)
    clock.advance(SMALL.wait_duration_in_open_state_s - 0.001)
    assert [breaker.try_acquire() for _ in range(5)] == [False] * 5
    assert breaker.state is OPEN
    assert breaker.snapshot().not_permitted_calls == 5


def test_open_turns_half_open_after_the_wait(
    breaker: CircuitBreaker, clock: VirtualClock, recorder: Recorder
) -> None:
    """The first call after the wait is admitted as a probe and the breaker is HALF_OPEN."""
    trip(breaker)
    opened_at = clock.monotonic()
    clock.advance(SMALL.wait_duration_in_open_state_s)
    assert breaker.try_acquire()
    assert breaker.state is HALF_OPEN
    assert recorder.path == [(CLOSED, OPEN), (OPEN, HALF_OPEN)]
    assert [e.at for e in recorder.events] == [opened_at, opened_at + SMALL.wait_duration_in_open_state_s]


def test_results_of_calls_admitted_before_opening_are_ignored(
    breaker: CircuitBreaker, clock: VirtualClock
) -> None:
    """Stragglers finishing while OPEN neither change the state nor count as probes later."""
    for _ in range(3):
        assert breaker.try_acquire()  # in flight while the breaker trips
    trip(breaker)
    for _ in range(3):
        breaker.on_success(FAST)
    assert breaker.state is OPEN
    clock.advance(SMALL.wait_duration_in_open_state_s)
    assert [breaker.try_acquire() for _ in range(4)] == [True, True, True, False]


# ---- HALF_OPEN ------------------------------------------------------------------------------------


def test_half_open_limits_probes_in_flight(breaker: CircuitBreaker, clock: VirtualClock) -> None:
    """HALF_OPEN admits exactly the permitted number of probes and rejects the rest while they run."""
    to_half_open(breaker, clock)
    assert [breaker.try_acquire() for _ in range(4)] == [True, True, False, False]
    assert breaker.state is HALF_OPEN
    assert breaker.snapshot().not_permitted_calls == 2


def test_half_open_closes_when_probes_succeed(
    breaker: CircuitBreaker, clock: VirtualClock, recorder: Recorder
) -> None:
    """Three good probes close the breaker with an empty window."""
    to_half_open(breaker, clock)
    assert breaker.try_acquire()
    assert breaker.try_acquire()
    breaker.on_success(FAST)
    breaker.on_success(FAST)
    assert breaker.state is HALF_OPEN  # the decision waits for every probe
    breaker.on_success(FAST)
    assert breaker.state is CLOSED
    assert breaker.snapshot().buffered_calls == 0
    assert recorder.path == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED)]


def test_half_open_closes_when_probe_rates_are_under_thresholds(
    breaker: CircuitBreaker, clock: VirtualClock
) -> None:
    """One failed probe of three (33 %) is under the 50 % threshold, so the breaker closes."""
    to_half_open(breaker, clock)
    breaker.try_acquire()
    breaker.try_acquire()
    breaker.on_error(FAST)
    breaker.on_success(FAST)
    breaker.on_success(FAST)
    assert breaker.state is CLOSED


@pytest.mark.parametrize(
    ("ok", "duration"),
    [pytest.param(False, FAST, id="failing-probes"), pytest.param(True, SLOW, id="slow-probes")],
)
def test_half_open_reopens_when_probes_are_bad(
    breaker: CircuitBreaker, clock: VirtualClock, recorder: Recorder, ok: bool, duration: float
) -> None:
    """Two bad probes of three reopen the breaker, and the open wait starts again from then."""
    to_half_open(breaker, clock)
    breaker.try_acquire()
    breaker.try_acquire()
    breaker.on_success(FAST)
    for _ in range(2):
        if ok:
            breaker.on_success(duration)
        else:
            breaker.on_error(duration)
    assert breaker.state is OPEN
    assert recorder.path == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, OPEN)]
    clock.advance(SMALL.wait_duration_in_open_state_s - 0.001)
    assert not breaker.try_acquire()
    clock.advance(0.001)
    assert breaker.try_acquire()
    assert breaker.state is HALF_OPEN


def test_release_gives_a_probe_back(breaker: CircuitBreaker, clock: VirtualClock) -> None:
    """A probe that never ran returns its permission, so another probe may take it."""
    to_half_open(breaker, clock)
    assert breaker.try_acquire()
    assert breaker.try_acquire()
    assert not breaker.try_acquire()
    breaker.release()
    assert breaker.try_acquire()
    for _ in range(3):
        breaker.on_success(FAST)
    assert breaker.state is CLOSED


def test_release_outside_half_open_changes_nothing(breaker: CircuitBreaker) -> None:
    """Releasing a CLOSED-state permission records no call and leaves the state alone."""
    assert breaker.try_acquire()
    breaker.release()
    assert breaker.state is CLOSED
    assert breaker.snapshot().buffered_calls == 0


def test_half_open_ignores_results_that_are_not_probes(breaker: CircuitBreaker, clock: VirtualClock) -> None:
    """Extra results while HALF_OPEN, beyond the probes in flight, cannot decide the state."""
    to_half_open(breaker, clock)
    breaker.on_error(FAST)  # the one probe in flight
    for _ in range(5):
        breaker.on_error(FAST)  # not probes
    assert breaker.state is HALF_OPEN
    assert breaker.try_acquire()
    assert breaker.try_acquire()
    breaker.on_success(FAST)
    breaker.on_success(FAST)
    assert breaker.state is CLOSED


def test_half_open_reopens_when_probes_never_report(
    breaker: CircuitBreaker, clock: VirtualClock, recorder: Recorder
) -> None:
    """Probes lost for longer than ``max_wait_in_half_open_s`` reopen the breaker instead of wedging it."""
    to_half_open(breaker, clock)
    breaker.try_acquire()
    breaker.try_acquire()
    clock.advance(SMALL.max_wait_in_half_open_s - 0.001)
    assert not breaker.try_acquire()
    assert breaker.state is HALF_OPEN
    clock.advance(0.001)
    assert not breaker.try_acquire()
    assert breaker.state is OPEN
    assert recorder.path[-1] == (HALF_OPEN, OPEN)


def test_half_open_waits_forever_when_max_wait_is_zero(clock: VirtualClock) -> None:
    """With ``max_wait_in_half_open_s=0`` the breaker waits for its probes however long they take."""
    config = msgspec.structs.replace(SMALL, max_wait_in_half_open_s=0.0)
    breaker = CircuitBreaker("p:h", config, clock=clock)
    to_half_open(breaker, clock)
    breaker.try_acquire()
    breaker.try_acquire()
    clock.advance(1e9)
    assert not breaker.try_acquire()
    assert breaker.state is HALF_OPEN


# ---- listeners ------------------------------------------------------------------------------------


def test_listener_sees_each_transition_once(
    breaker: CircuitBreaker, clock: VirtualClock, recorder: Recorder
) -> None:
    """A full cycle reports each transition exactly once, named for the breaker, in order."""
    late = Recorder()
    breaker.add_listener(late)
    to_half_open(breaker, clock)
    breaker.on_error(FAST)
    breaker.try_acquire()
    breaker.try_acquire()
    breaker.on_error(FAST)
    breaker.on_error(FAST)
    clock.advance(SMALL.wait_duration_in_open_state_s)
    for _ in range(10):
        call(breaker)
    expected = [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED)]
    assert recorder.path == expected
    assert late.path == expected
    assert {e.breaker for e in recorder.events} == {"demo:home_slot_offers"}


def test_raising_listener_does_not_break_the_breaker(
    clock: VirtualClock, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    """A listener that raises is logged; the transition happens and later listeners still run."""

    def broken(event: StateTransition) -> None:
        raise RuntimeError("metrics backend down")

    breaker = CircuitBreaker("p:h", SMALL, clock=clock, listeners=[broken, recorder])
    with caplog.at_level(logging.ERROR, logger="fulcrum_core.dispatch.breaker"):
        trip(breaker)
    assert breaker.state is OPEN
    assert recorder.path == [(CLOSED, OPEN)]
    assert any("listener" in r.getMessage() for r in caplog.records)


# ---- reset ----------------------------------------------------------------------------------------


def test_a_breaker_has_no_state_only_an_operator_could_reach() -> None:
    """Closed, open and half open are the states, all reached by calls (or another worker's opening):
    nothing in the product forced a breaker open, so no such state is kept or exported. The kill switch
    for a plugin is the registry's suspension, on every worker."""
    assert [state.value for state in BreakerState] == ["closed", "open", "half_open"]
    assert not hasattr(CircuitBreaker, "force_open")


def test_reset_from_open_closes_with_an_empty_window(breaker: CircuitBreaker, recorder: Recorder) -> None:
    """reset() on an OPEN breaker closes it at once and forgets the failures that opened it."""
    trip(breaker)
    breaker.reset()
    assert breaker.state is CLOSED
    assert breaker.snapshot().buffered_calls == 0
    for _ in range(9):
        call(breaker, ok=False)
    assert breaker.state is CLOSED


def test_reset_when_closed_clears_the_window_without_an_event(
    breaker: CircuitBreaker, recorder: Recorder
) -> None:
    """reset() on a CLOSED breaker empties its window and reports no transition."""
    for _ in range(9):
        call(breaker, ok=False)
    breaker.reset()
    call(breaker, ok=False)
    assert breaker.state is CLOSED
    assert breaker.snapshot().buffered_calls == 1
    assert recorder.events == []


def test_a_call_admitted_before_opening_cannot_free_a_probe_when_the_wait_is_shorter_than_the_deadline(
    clock: VirtualClock,
) -> None:
    """With an open wait (50 ms) shorter than the hook's deadline (100 ms), a call admitted while
    CLOSED may still be running when the breaker half-opens; when it then gives its permission back
    (the caller's budget cut it short), it must not free the one probe's place for a second probe.
    The breaker of a hook waits at least that hook's deadline before half-opening."""
    config = msgspec.structs.replace(
        SMALL, wait_duration_in_open_state_s=0.05, permitted_calls_in_half_open=1
    ).for_deadline(0.1)
    breaker = CircuitBreaker("b", config, clock=clock)
    assert breaker.try_acquire()  # the straggler, admitted while CLOSED
    trip(breaker)
    clock.advance(0.05)
    probes = 0
    if breaker.try_acquire():
        probes += 1
        breaker.release()  # the straggler ends: its caller gave up on it
        probes += breaker.try_acquire()
    assert probes <= 1
    clock.advance(0.06)  # the deadline has passed: every call admitted before opening has ended
    assert breaker.try_acquire()
    assert not breaker.try_acquire()


# ---- configuration --------------------------------------------------------------------------------


def test_default_config_matches_the_documented_defaults() -> None:
    """Defaults: 20-call window, minimum 10, 50 % / 50 %, 30 s open, 3 probes."""
    cfg = BreakerConfig()
    assert (cfg.sliding_window_size, cfg.minimum_number_of_calls) == (20, 10)
    assert (cfg.failure_rate_threshold, cfg.slow_call_rate_threshold) == (50.0, 50.0)
    assert (cfg.wait_duration_in_open_state_s, cfg.permitted_calls_in_half_open) == (30.0, 3)


def test_for_deadline_sets_the_slow_call_duration() -> None:
    """for_deadline() returns a copy whose slow-call duration is the hook's deadline."""
    cfg = BreakerConfig().for_deadline(5.0)
    assert cfg.slow_call_duration_s == 5.0
    assert cfg.sliding_window_size == BreakerConfig().sliding_window_size
    assert cfg.wait_duration_in_open_state_s == 30.0  # already longer than the deadline: kept
    assert BreakerConfig().for_deadline(60.0).wait_duration_in_open_state_s == 60.0


# Home's deadline is 150 ms; its slow-call threshold (the settings' default, 80 % of it) is 120 ms.
HOME = SMALL.for_deadline(0.150, 0.120)


def test_a_call_just_under_the_deadline_trips_the_slow_call_rate(clock: VirtualClock) -> None:
    """A plugin answering in 140 ms of a 150 ms deadline never timed out, so it was never slow and kept
    most of the page's budget; over the 120 ms threshold every such call is slow, and a window of them
    opens the breaker on the slow-call rate alone (no call failed)."""
    recorder = Recorder()
    breaker = CircuitBreaker("crawler:home_slot_offers", HOME, clock=clock, listeners=[recorder])
    for _ in range(HOME.minimum_number_of_calls - 1):
        assert call(breaker, duration=0.140)
    assert breaker.state is CLOSED
    assert call(breaker, duration=0.140)
    assert recorder.path == [(CLOSED, OPEN)]
    assert not breaker.try_acquire()  # skipped without waiting from now on
    snapshot = breaker.snapshot()
    assert (snapshot.slow_calls, snapshot.failed_calls) == (HOME.minimum_number_of_calls, 0)
    assert snapshot.slow_call_rate == 100.0


def test_a_call_well_under_the_threshold_never_trips(clock: VirtualClock) -> None:
    """A plugin answering in 50 ms stays CLOSED however many calls it makes; so does one right at the
    threshold (only a call *over* it is slow)."""
    for duration in (0.050, 0.120):
        breaker = CircuitBreaker("quick:home_slot_offers", HOME, clock=clock)
        for _ in range(5 * HOME.sliding_window_size):
            assert call(breaker, duration=duration)
        snapshot = breaker.snapshot()
        assert (snapshot.state, snapshot.slow_calls, snapshot.slow_call_rate) == (CLOSED, 0, 0.0)


def test_slow_probes_reopen_the_breaker(clock: VirtualClock) -> None:
    """HALF_OPEN judges its probes by the same threshold: probes at 140 ms reopen it, probes at 50 ms
    close it."""
    breaker = CircuitBreaker("crawler:home_slot_offers", HOME, clock=clock)
    for _ in range(HOME.sliding_window_size):
        call(breaker, duration=0.140)
    for duration, after in ((0.140, OPEN), (0.050, CLOSED)):
        clock.advance(HOME.wait_duration_in_open_state_s)
        for _ in range(HOME.permitted_calls_in_half_open):
            assert call(breaker, duration=duration)
        assert breaker.state is after


def test_a_timeout_stays_slow_under_a_lower_threshold(clock: VirtualClock) -> None:
    """A call cut off at its deadline counts as slow and failed, and a success over the threshold as
    slow only; an error under it as failed only."""
    breaker = CircuitBreaker("mixed:home_slot_offers", HOME, clock=clock)
    assert breaker.try_acquire()
    breaker.on_timeout(0.150)
    call(breaker, duration=0.130)
    call(breaker, ok=False, duration=0.010)
    snapshot = breaker.snapshot()
    assert (snapshot.buffered_calls, snapshot.slow_calls, snapshot.failed_calls) == (3, 2, 2)


def test_for_deadline_takes_a_slow_call_threshold_up_to_the_deadline() -> None:
    """The threshold is the hook's own; the open wait still covers the deadline, and a threshold of 0 or
    over the deadline is refused."""
    cfg = BreakerConfig(wait_duration_in_open_state_s=0.1).for_deadline(0.150, 0.120)
    assert (cfg.slow_call_duration_s, cfg.wait_duration_in_open_state_s) == (0.120, 0.150)
    assert BreakerConfig().for_deadline(0.150, 0.150).slow_call_duration_s == 0.150
    for bad in (0.0, -1.0, 0.151, math.nan):
        with pytest.raises(ValueError, match="slow-call duration"):
            BreakerConfig().for_deadline(0.150, bad)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sliding_window_size", 0),
        ("minimum_number_of_calls", 0),
        ("permitted_calls_in_half_open", 0),
        ("failure_rate_threshold", 0.0),
        ("failure_rate_threshold", 100.5),
        ("slow_call_rate_threshold", -1.0),
        ("slow_call_rate_threshold", math.nan),
        ("slow_call_duration_s", 0.0),
        ("slow_call_duration_s", math.nan),
        ("wait_duration_in_open_state_s", -1.0),
        ("max_wait_in_half_open_s", -0.5),
    ],
)
def test_bad_config_is_refused_naming_the_field(field: str, value: float) -> None:
    """An out-of-range setting fails construction and decoding with an error naming the field."""
    with pytest.raises(ValueError, match=field):
        BreakerConfig(**{field: value})  # type: ignore[arg-type]
    with pytest.raises(msgspec.ValidationError, match=field):
        msgspec.convert({field: value}, BreakerConfig)


def test_unknown_config_key_is_refused() -> None:
    """A misspelled key in a breaker config is an error, not silently ignored."""
    with pytest.raises(msgspec.ValidationError, match="window_size"):
        msgspec.convert({"window_size": 5}, BreakerConfig)


# ---- clocks ---------------------------------------------------------------------------------------


def test_virtual_clock_moves_only_when_advanced() -> None:
    """VirtualClock reads the same until advanced, and refuses to go backwards."""
    clock = VirtualClock(5.0)
    assert clock.monotonic() == clock.monotonic() == 5.0
    assert clock.advance(2.5) == 7.5
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1.0)
    assert clock.monotonic() == 7.5


def test_monotonic_clock_is_a_clock_and_the_default() -> None:
    """The production clock satisfies the Clock protocol and drives a breaker by default."""
    assert isinstance(MONOTONIC, MonotonicClock)
    assert isinstance(MONOTONIC, Clock)
    assert isinstance(VirtualClock(), Clock)
    first = MONOTONIC.monotonic()
    assert MONOTONIC.monotonic() >= first
    breaker = CircuitBreaker("p:h")
    assert breaker.try_acquire()
    breaker.on_success(0.0)
    assert breaker.state is CLOSED


def test_admits_in_counts_down_the_open_wait(breaker: CircuitBreaker, clock: VirtualClock) -> None:
    """``admits_in`` is what is left of the OPEN wait (a refused transaction's Retry-After), 0 once it
    has passed and in every state not waiting on the clock."""
    assert breaker.admits_in() == 0.0
    trip(breaker)
    assert breaker.admits_in() == SMALL.wait_duration_in_open_state_s
    clock.advance(20.0)
    assert breaker.admits_in() == pytest.approx(10.0)
    clock.advance(15.0)
    assert breaker.admits_in() == 0.0
    assert breaker.try_acquire()  # HALF_OPEN: waits for its probes, not for the clock
    assert breaker.admits_in() == 0.0


# ---- trip(): a call that held the event loop ---------------------------------------------------------


def test_trip_opens_a_closed_breaker_at_once_for_the_usual_wait(
    breaker: CircuitBreaker, clock: VirtualClock, recorder: Recorder
) -> None:
    call(breaker)  # one good call: far from the minimum, no rate
    assert breaker.trip()
    assert breaker.state is OPEN
    assert recorder.path == [(CLOSED, OPEN)]
    assert not breaker.try_acquire()
    clock.advance(SMALL.wait_duration_in_open_state_s - 0.001)
    assert not breaker.try_acquire()
    clock.advance(0.001)
    assert breaker.try_acquire()  # then probes, as after any opening
    assert breaker.state is HALF_OPEN


def test_trip_sends_a_half_open_breaker_back_to_open(
    breaker: CircuitBreaker, clock: VirtualClock, recorder: Recorder
) -> None:
    to_half_open(breaker, clock)
    assert breaker.trip()
    assert breaker.state is OPEN
    assert recorder.path[-1] == (HALF_OPEN, OPEN)
    breaker.on_timeout(1.0)  # the probe that held the loop reports after: nothing more changes
    assert breaker.state is OPEN
    assert not breaker.try_acquire()


def test_trip_leaves_an_open_breaker_as_it_is(
    breaker: CircuitBreaker, clock: VirtualClock, recorder: Recorder
) -> None:
    trip(breaker)
    opened = len(recorder.events)
    clock.advance(10.0)
    assert not breaker.trip()
    clock.advance(SMALL.wait_duration_in_open_state_s - 10.0)
    assert breaker.try_acquire()  # the wait was not restarted
    assert len(recorder.events) == opened + 1  # HALF_OPEN; no trip


@pytest.mark.parametrize("hold", [0.5, -1.0, math.nan])
def test_open_on_loop_hold_is_off_or_at_least_one_deadline(hold: float) -> None:
    with pytest.raises(ValueError, match=r"`open_on_loop_hold` must be 0 \(off\) or >= 1"):
        BreakerConfig(open_on_loop_hold=hold)
    assert BreakerConfig(open_on_loop_hold=0).open_on_loop_hold == 0
    assert BreakerConfig().open_on_loop_hold == 2.0
