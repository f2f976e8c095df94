"""A circuit breaker per plugin × hook, with resilience4j's semantics (count- or time-based window).

One plugin that keeps failing or crawling must stop costing the home page anything: after enough bad
calls its breaker opens and the dispatcher skips it without waiting, then lets a few probes through
later to see whether it has recovered. The common Python breakers count consecutive failures only;
this one keeps a sliding window and trips on a failure rate *or* a slow-call rate::

    CLOSED ──(window has >= minimum calls and failure or slow rate >= threshold)──▶ OPEN
    OPEN ──(wait_duration_in_open_state elapsed; checked on the next try_acquire)──▶ HALF_OPEN
    HALF_OPEN ──(all probes recorded, both rates under their thresholds)──▶ CLOSED
    HALF_OPEN ──(all probes recorded, a rate at or over its threshold)──▶ OPEN
    HALF_OPEN ──(max_wait_in_half_open elapsed before the probes finished)──▶ OPEN
    CLOSED or HALF_OPEN ──trip()──▶ OPEN     (a call held the event loop past ``open_on_loop_hold`` deadlines)
    any ──reset()──▶ CLOSED

No operator forces a breaker open: the registry's kill switch (``fulcrum registry suspend``, audited, and
undone only with a second person's approval) stops a plugin on every worker, where a breaker is one
worker's view of one plugin × hook.

Protocol for a caller: ``if breaker.try_acquire():`` run the call and then report exactly one of
``on_success(duration_s)``, ``on_error(duration_s)``, ``on_timeout(deadline_s)`` (cut off at its
deadline) or ``release()`` (the call never ran or was cancelled). A call slower than
``slow_call_duration_s`` counts as slow whether it succeeded or failed; so does one cut off at a
deadline at least that long, since it would have run longer still.

The window is the last ``sliding_window_size`` calls (``count_based``, the default) or the calls of the
last ``sliding_window_size`` seconds (``time_based``, :class:`TimeWindowBreaker`), in one-second
buckets as resilience4j keeps them: a plugin called a few times an hour is then judged by its recent
calls, not by failures from hours ago that no later call has pushed out.

Threading: a breaker belongs to one event loop and is called from that loop's thread only. It takes
no lock, so the hot path is a handful of attribute reads; do not share one across threads.

Results that arrive after the state changed under them (a call admitted while CLOSED that ends after
the breaker opened) change nothing while OPEN. A hook's breaker stays open at least the hook's deadline
(``BreakerConfig.for_deadline``), so no such straggler can land in a later HALF_OPEN and be taken for a
probe, or give back a permission and let a second probe through.
"""

from __future__ import annotations

import collections
import enum
import logging
import math
from collections.abc import Callable, Iterable
from typing import Literal

import msgspec

from fulcrum_core.dispatch.clock import MONOTONIC, Clock

__all__ = [
    "MAX_TIME_WINDOW_S",
    "BreakerConfig",
    "BreakerSnapshot",
    "BreakerState",
    "CircuitBreaker",
    "StateTransition",
    "TimeWindowBreaker",
    "TransitionListener",
    "new_breaker",
]

_log = logging.getLogger(__name__)

MAX_TIME_WINDOW_S = 3600
"""The longest time-based window: an hour of calls is what "recent" can mean for a breaker, and a
busy plugin keeps a bucket for every second of it."""

# Outcome bits stored in the ring buffer, one small int per call.
_FAILED = 1
_SLOW = 2


class BreakerState(enum.StrEnum):
    """Where a breaker is; the value is the label used in metrics and logs."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class BreakerConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How one breaker decides; every breaker of a hook shares one of these.

    Rates are percentages in (0, 100]; durations are seconds. With a count-based window,
    ``minimum_number_of_calls`` larger than the window acts as the window size, as in resilience4j.
    """

    # "count_based": the CLOSED state judges the last ``sliding_window_size`` calls; "time_based": the
    # calls of the last ``sliding_window_size`` seconds.
    sliding_window_type: Literal["count_based", "time_based"] = "count_based"
    # How many of the most recent calls (or seconds of calls) the CLOSED state judges by.
    sliding_window_size: int = 20
    # No decision while the window holds fewer calls than this.
    minimum_number_of_calls: int = 10
    failure_rate_threshold: float = 50.0
    slow_call_rate_threshold: float = 50.0
    # A call taking longer than this is slow; the dispatcher sets it per hook (``for_deadline``).
    slow_call_duration_s: float = 0.150
    wait_duration_in_open_state_s: float = 30.0
    # Probes let through in HALF_OPEN; others are rejected until these have been recorded.
    permitted_calls_in_half_open: int = 3
    # Reopen if the probes have not all reported after this long (0 = wait for them forever).
    max_wait_in_half_open_s: float = 60.0
    # A call that held the event loop (an inline call, or a coroutine's first step) longer than this many
    # times its deadline opens its breaker at once, whatever the window says: every request on the
    # worker waited for it. 0: such a call only counts in the window, as any timeout does.
    open_on_loop_hold: float = 2.0

    def __post_init__(self) -> None:
        _at_least("sliding_window_size", self.sliding_window_size, 1)
        _at_least("minimum_number_of_calls", self.minimum_number_of_calls, 1)
        _at_least("permitted_calls_in_half_open", self.permitted_calls_in_half_open, 1)
        if self.sliding_window_type == "time_based" and self.sliding_window_size > MAX_TIME_WINDOW_S:
            raise ValueError(
                f"`sliding_window_size` of a time-based window is in seconds, at most {MAX_TIME_WINDOW_S}, "
                f"got {self.sliding_window_size!r}"
            )
        for name in ("failure_rate_threshold", "slow_call_rate_threshold"):
            value = getattr(self, name)
            if not 0 < value <= 100:
                raise ValueError(f"`{name}` must be a percentage in (0, 100], got {value!r}")
        if not self.slow_call_duration_s > 0:
            raise ValueError(f"`slow_call_duration_s` must be > 0, got {self.slow_call_duration_s!r}")
        _at_least("wait_duration_in_open_state_s", self.wait_duration_in_open_state_s, 0)
        _at_least("max_wait_in_half_open_s", self.max_wait_in_half_open_s, 0)
        if not (self.open_on_loop_hold == 0 or self.open_on_loop_hold >= 1):  # NaN too
            raise ValueError(f"`open_on_loop_hold` must be 0 (off) or >= 1, got {self.open_on_loop_hold!r}")

    def for_deadline(self, deadline_s: float, slow_call_s: float | None = None) -> BreakerConfig:
        """This config for a hook with that deadline: calls slower than ``slow_call_s`` (at most the
        deadline; the deadline itself when None) count as slow, and the breaker stays open at least the
        deadline, so every call admitted before it opened has ended before a probe is let through
        (none of them can be taken for a probe or free a probe's place)."""
        slow = deadline_s if slow_call_s is None else slow_call_s
        if not 0 < slow <= deadline_s:
            raise ValueError(f"the slow-call duration must be in (0, {deadline_s!r}] s, got {slow!r}")
        wait = max(self.wait_duration_in_open_state_s, deadline_s)
        return msgspec.structs.replace(self, slow_call_duration_s=slow, wait_duration_in_open_state_s=wait)


def _at_least(name: str, value: float, low: float) -> None:
    if not value >= low:  # also rejects NaN
        raise ValueError(f"`{name}` must be >= {low}, got {value!r}")


class StateTransition(msgspec.Struct, frozen=True):
    """One change of state, handed to listeners (metrics, logs)."""

    breaker: str
    from_state: BreakerState
    to_state: BreakerState
    at: float  # the breaker's clock reading, seconds


# Module-level aliases: reading an enum member through its class costs ~100 ns on Python 3.11,
# a global read ~10 ns, and the hot path compares states on every call.
_CLOSED = BreakerState.CLOSED
_OPEN = BreakerState.OPEN
_HALF_OPEN = BreakerState.HALF_OPEN

TransitionListener = Callable[[StateTransition], None]


class BreakerSnapshot(msgspec.Struct, frozen=True):
    """A breaker's state and window for ``/v1/plugins`` and metrics; rates are None below the minimum."""

    name: str
    state: BreakerState
    buffered_calls: int
    failed_calls: int
    slow_calls: int
    failure_rate: float | None
    slow_call_rate: float | None
    not_permitted_calls: int


class CircuitBreaker:
    """The breaker state machine for one plugin × hook; see the module docstring for the rules."""

    __slots__ = (
        "_buf",
        "_clock",
        "_config",
        "_count",
        "_fail_threshold",
        "_failed",
        "_half_open_since",
        "_idx",
        "_listeners",
        "_min_calls",
        "_not_permitted",
        "_open_until",
        "_probe_failed",
        "_probe_slow",
        "_probes_done",
        "_probes_out",
        "_probes_started",
        "_size",
        "_slow",
        "_slow_s",
        "_slow_threshold",
        "_state",
        "name",
    )

    def __init__(
        self,
        name: str,
        config: BreakerConfig | None = None,
        *,
        clock: Clock = MONOTONIC,
        listeners: Iterable[TransitionListener] = (),
    ) -> None:
        cfg = config if config is not None else BreakerConfig()
        self.name = name
        self._config = cfg
        self._clock = clock
        self._listeners: list[TransitionListener] = list(listeners)
        self._state = _CLOSED
        # CLOSED: a ring buffer of outcome bits with running totals, so recording is O(1).
        self._size = cfg.sliding_window_size
        self._min_calls = min(cfg.minimum_number_of_calls, cfg.sliding_window_size)
        self._buf = [0] * self._size
        self._idx = 0
        self._count = 0
        self._failed = 0
        self._slow = 0
        self._slow_s = cfg.slow_call_duration_s
        self._fail_threshold = cfg.failure_rate_threshold
        self._slow_threshold = cfg.slow_call_rate_threshold
        # OPEN / HALF_OPEN bookkeeping.
        self._open_until = 0.0
        self._half_open_since = 0.0
        self._probes_started = 0
        self._probes_out = 0
        self._probes_done = 0
        self._probe_failed = 0
        self._probe_slow = 0
        self._not_permitted = 0
        self._clear_window()  # a subclass's window starts empty the same way

    # ---- reading -------------------------------------------------------------------------------

    @property
    def config(self) -> BreakerConfig:
        """The rules this breaker applies."""
        return self._config

    @property
    def state(self) -> BreakerState:
        """The current state; OPEN turns HALF_OPEN only when the next ``try_acquire`` asks."""
        return self._state

    def snapshot(self) -> BreakerSnapshot:
        """The state and the CLOSED window's counts, for operators."""
        count = self._count
        judged = count >= self._min_calls
        return BreakerSnapshot(
            name=self.name,
            state=self._state,
            buffered_calls=count,
            failed_calls=self._failed,
            slow_calls=self._slow,
            failure_rate=self._failed * 100.0 / count if judged else None,
            slow_call_rate=self._slow * 100.0 / count if judged else None,
            not_permitted_calls=self._not_permitted,
        )

    @property
    def probes_in_flight(self) -> int:
        """HALF_OPEN probes admitted and not yet recorded or released (0 in any other state)."""
        return self._probes_out

    def admits_in(self) -> float:
        """Seconds until an OPEN breaker lets its probes through; 0 in any other state."""
        if self._state is not _OPEN:
            return 0.0
        return max(0.0, self._open_until - self._clock.monotonic())

    def add_listener(self, listener: TransitionListener) -> None:
        """Call ``listener`` once for every later change of state."""
        self._listeners.append(listener)

    # ---- the hot path --------------------------------------------------------------------------

    def try_acquire(self) -> bool:
        """Whether a call may run now; False means skip the plugin without calling it."""
        state = self._state
        if state is _CLOSED:
            return True
        if state is _OPEN:
            now = self._clock.monotonic()
            if now < self._open_until:
                self._not_permitted += 1
                return False
            self._transition(_HALF_OPEN, now)
            state = _HALF_OPEN
        if state is _HALF_OPEN:
            if self._probes_started < self._config.permitted_calls_in_half_open:
                self._probes_started += 1
                self._probes_out += 1
                return True
            max_wait = self._config.max_wait_in_half_open_s
            if max_wait > 0:
                now = self._clock.monotonic()
                if now - self._half_open_since >= max_wait:
                    self._transition(_OPEN, now)
        self._not_permitted += 1
        return False

    def on_success(self, duration_s: float) -> None:
        """Record a call that returned normally after ``duration_s`` seconds."""
        outcome = _SLOW if duration_s > self._slow_s else 0
        i = self._idx
        if self._state is _CLOSED and self._count == self._size and self._buf[i] == outcome:
            # The steady state: the window is full and the call pushed out ended the same way.
            i += 1
            self._idx = 0 if i == self._size else i
            return
        self._record(outcome)

    def on_error(self, duration_s: float) -> None:
        """Record a call that raised, timed out or returned garbage after ``duration_s`` seconds."""
        self._record(_FAILED | _SLOW if duration_s > self._slow_s else _FAILED)

    def on_timeout(self, deadline_s: float) -> None:
        """Record a call cut off at a deadline of ``deadline_s`` seconds: failed, and slow when the
        deadline is at least the slow-call duration (the call ran longer than that and never ended)."""
        self._record(_FAILED | _SLOW if deadline_s >= self._slow_s else _FAILED)

    def release(self) -> None:
        """Give back a permission whose call never ran or was cancelled; nothing is recorded."""
        if self._state is _HALF_OPEN and self._probes_out > 0:
            self._probes_out -= 1
            self._probes_started -= 1

    def _record(self, outcome: int) -> None:
        state = self._state
        if state is _CLOSED:
            buf = self._buf
            i = self._idx
            old = buf[i]  # the call this one pushes out, when the window is full
            buf[i] = outcome
            i += 1
            self._idx = 0 if i == self._size else i
            count = self._count
            if count == self._size:
                if outcome == old:
                    return  # totals unchanged: the steady state of a healthy (or a dead) plugin
                self._failed += (outcome & _FAILED) - (old & _FAILED)
                self._slow += (outcome >> 1) - (old >> 1)
            else:
                count += 1
                self._count = count
                self._failed += outcome & _FAILED
                self._slow += outcome >> 1
            # Rates are first judged at the minimum; after that only a failed or slow call raises one.
            min_calls = self._min_calls
            if (
                count >= min_calls
                and (outcome or count == min_calls)
                and (
                    self._failed * 100 >= self._fail_threshold * count
                    or self._slow * 100 >= self._slow_threshold * count
                )
            ):
                self._transition(_OPEN, self._clock.monotonic())
        elif state is _HALF_OPEN and self._probes_out > 0:
            self._probes_out -= 1
            self._probes_done += 1
            self._probe_failed += outcome & _FAILED
            self._probe_slow += outcome >> 1
            done = self._probes_done
            if done == self._config.permitted_calls_in_half_open:
                bad = (
                    self._probe_failed * 100 >= self._fail_threshold * done
                    or self._probe_slow * 100 >= self._slow_threshold * done
                )
                self._transition(_OPEN if bad else _CLOSED, self._clock.monotonic())
        # OPEN, or a HALF_OPEN straggler that was no probe: nothing to learn.

    # ---- operator controls ---------------------------------------------------------------------

    def open_for(self, seconds: float) -> bool:
        """Open a CLOSED breaker now, for ``seconds`` rather than the configured wait: another worker's
        breaker of the same plugin × hook opened. Then HALF_OPEN probes as usual. True if it opened."""
        if self._state is not _CLOSED:
            return False
        now = self._clock.monotonic()
        self._transition(_OPEN, now)
        self._open_until = now + max(0.0, seconds)
        return True

    def trip(self) -> bool:
        """Open now for the configured wait, from CLOSED or HALF_OPEN, whatever the window says: a call
        held the event loop far past its deadline (``open_on_loop_hold``). True if it opened."""
        if self._state is not _CLOSED and self._state is not _HALF_OPEN:
            return False
        self._transition(_OPEN, self._clock.monotonic())
        return True

    def reset(self) -> None:
        """Back to CLOSED with an empty window, from any state."""
        if self._state is _CLOSED:
            self._clear_window()
        else:
            self._transition(_CLOSED, self._clock.monotonic())

    # ---- transitions ---------------------------------------------------------------------------

    def _clear_window(self) -> None:
        # Slots are overwritten in order before they are read again, so the buffer needs no wipe.
        self._idx = self._count = self._failed = self._slow = 0

    def _transition(self, to: BreakerState, now: float) -> None:
        old = self._state
        self._state = to
        self._probes_started = self._probes_out = self._probes_done = 0
        self._probe_failed = self._probe_slow = 0
        if to is _OPEN:
            self._open_until = now + self._config.wait_duration_in_open_state_s
        elif to is _HALF_OPEN:
            self._half_open_since = now
        elif to is _CLOSED:
            self._clear_window()
        event = StateTransition(breaker=self.name, from_state=old, to_state=to, at=now)
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                # A broken metrics hook must not wedge the breaker or fail the request.
                _log.exception("breaker listener %r failed on %s → %s", listener, old, to)


class TimeWindowBreaker(CircuitBreaker):
    """:class:`CircuitBreaker` judging, while CLOSED, the calls of the last ``sliding_window_size``
    seconds: one bucket per second that had calls (its calls, failed and slow), oldest first, dropped
    as the clock passes it. Seconds without calls take no room and no time.

    Every call reads the clock and is judged once the window holds ``minimum_number_of_calls`` (not
    capped by the window's size, as in resilience4j): rates can rise as good calls age out, so a
    call of either kind may be the one that finds them over a threshold. HALF_OPEN probes are counted
    as the count-based breaker counts them.
    """

    __slots__ = ("_buckets", "_seconds")
    _buckets: collections.deque[list[int]]  # [second, calls, failed, slow], oldest first
    _seconds: int

    def snapshot(self) -> BreakerSnapshot:
        """As :meth:`CircuitBreaker.snapshot`, over the calls still inside the window now."""
        self._advance(math.floor(self._clock.monotonic()))
        return super().snapshot()

    def on_success(self, duration_s: float) -> None:
        """Record a call that returned normally after ``duration_s`` seconds."""
        self._record(_SLOW if duration_s > self._slow_s else 0)

    def _record(self, outcome: int) -> None:
        if self._state is not _CLOSED:
            super()._record(outcome)
            return
        now = self._clock.monotonic()
        second = math.floor(now)
        self._advance(second)
        failed, slow = outcome & _FAILED, outcome >> 1
        buckets = self._buckets
        if buckets and buckets[-1][0] >= second:  # this second's bucket (a clock never goes back)
            bucket = buckets[-1]
            bucket[1] += 1
            bucket[2] += failed
            bucket[3] += slow
        else:
            buckets.append([second, 1, failed, slow])
        count = self._count = self._count + 1
        self._failed += failed
        self._slow += slow
        if count >= self._min_calls and (
            self._failed * 100 >= self._fail_threshold * count
            or self._slow * 100 >= self._slow_threshold * count
        ):
            self._transition(_OPEN, now)

    def _advance(self, second: int) -> None:
        """Drop the buckets of the seconds that left the window by ``second`` (the window holds the
        ``sliding_window_size`` seconds up to and including it)."""
        buckets = self._buckets
        oldest = second - self._seconds + 1
        while buckets and buckets[0][0] < oldest:
            _, calls, failed, slow = buckets.popleft()
            self._count -= calls
            self._failed -= failed
            self._slow -= slow

    def _clear_window(self) -> None:
        """An empty window (also what the constructor starts with)."""
        super()._clear_window()
        config = self._config
        self._seconds = config.sliding_window_size
        self._min_calls = config.minimum_number_of_calls  # not capped by the window's size
        self._size = -1  # never "full": the count-based fast path in on_success is not taken
        self._buf = []  # the count-based ring, unused here
        self._buckets = collections.deque()


def new_breaker(
    name: str,
    config: BreakerConfig,
    *,
    clock: Clock = MONOTONIC,
    listeners: Iterable[TransitionListener] = (),
) -> CircuitBreaker:
    """The breaker ``config`` describes: count-based, or :class:`TimeWindowBreaker` for ``time_based``."""
    kind = TimeWindowBreaker if config.sliding_window_type == "time_based" else CircuitBreaker
    return kind(name, config, clock=clock, listeners=listeners)
