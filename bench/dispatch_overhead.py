"""Microbenchmark: what the circuit breaker and bulkhead add to each plugin call.

Run: ``uv run python bench/dispatch_overhead.py [--calls N] [--repeat R]``. Prints the best-of-R
cost per operation, in nanoseconds, with the cost of an empty loop iteration already subtracted.
Figures belong in ``bench/README.md``; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import gc
import platform
import sys
import time
from collections.abc import Callable

from fulcrum_core.dispatch.breaker import BreakerConfig, CircuitBreaker
from fulcrum_core.dispatch.bulkhead import Bulkhead
from fulcrum_core.dispatch.clock import VirtualClock

Loop = Callable[[int], None]


def empty_loop(n: int) -> None:
    """The baseline: a bare ``for`` loop."""
    for _ in range(n):
        pass


def closed_success(n: int) -> None:
    """CLOSED breaker: acquire + record a fast success (the steady-state hot path)."""
    breaker = CircuitBreaker("bench:closed_ok")
    acquire, ok = breaker.try_acquire, breaker.on_success
    for _ in range(n):
        if acquire():
            ok(0.001)


def closed_mixed(n: int) -> None:
    """CLOSED breaker, window always full: one failure in four, one slow call in eight (below thresholds)."""
    breaker = CircuitBreaker("bench:closed_mixed", BreakerConfig(sliding_window_size=20))
    acquire, ok, err = breaker.try_acquire, breaker.on_success, breaker.on_error
    for i in range(n):
        if acquire():
            if i & 3 == 0:
                err(0.001)
            elif i & 7 == 1:
                ok(1.0)
            else:
                ok(0.001)
    assert breaker.state == "closed"


def open_reject(n: int) -> None:
    """OPEN breaker: every call is rejected after one clock read."""
    breaker = CircuitBreaker("bench:open", BreakerConfig(minimum_number_of_calls=1), clock=VirtualClock())
    breaker.try_acquire()
    breaker.on_error(0.001)
    acquire = breaker.try_acquire
    for _ in range(n):
        acquire()
    assert breaker.state == "open"


def bulkhead_enter_leave(n: int) -> None:
    """Bulkhead: take a place and give it back."""
    bulkhead = Bulkhead(10)
    enter, leave = bulkhead.try_enter, bulkhead.leave
    for _ in range(n):
        if enter():
            leave()


def guarded_call(n: int) -> None:
    """What a dispatcher adds around a fast call: breaker + bulkhead + two perf_counter reads."""
    breaker = CircuitBreaker("bench:guarded")
    bulkhead = Bulkhead(10)
    acquire, ok = breaker.try_acquire, breaker.on_success
    enter, leave = bulkhead.try_enter, bulkhead.leave
    clock = time.perf_counter
    for _ in range(n):
        if acquire() and enter():
            start = clock()
            ok(clock() - start)
            leave()


CASES: dict[str, Loop] = {
    "breaker closed: acquire + on_success": closed_success,
    "breaker closed: acquire + mixed outcomes": closed_mixed,
    "breaker open: rejected acquire": open_reject,
    "bulkhead: try_enter + leave": bulkhead_enter_leave,
    "breaker + bulkhead + 2x perf_counter": guarded_call,
}


def best_ns_per_op(loop: Loop, calls: int, repeat: int) -> float:
    """The fastest of ``repeat`` timed runs, in nanoseconds per iteration, with GC off."""
    best = float("inf")
    gc.disable()
    try:
        for _ in range(repeat):
            start = time.perf_counter_ns()
            loop(calls)
            best = min(best, (time.perf_counter_ns() - start) / calls)
    finally:
        gc.enable()
    return best


def main() -> None:
    """Time every case and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    print(
        f"python {sys.version.split()[0]} on {platform.machine()}, {args.calls} calls, best of {args.repeat}"
    )
    baseline = best_ns_per_op(empty_loop, args.calls, args.repeat)
    print(f"{'empty loop iteration (subtracted below)':44s} {baseline:8.1f} ns")
    for label, loop in CASES.items():
        cost = best_ns_per_op(loop, args.calls, args.repeat) - baseline
        print(f"{label:44s} {cost:8.1f} ns  ({cost / 1000:.3f} µs)")


if __name__ == "__main__":
    main()
