"""Microbenchmark: the wealth check-up's home hook alone, and its glance, over the demo's customers.

Run: ``uv run python bench/wealth_home.py [--rounds N]``. Times, per call, in a tight loop over the
fifteen demo customers with every scope the plugin asks for: ``glance`` (the score, its weakest part
and the mismatches, no text), building a context as the harness does, and ``home_slot_offers`` on a
fresh context (the context's cost is subtracted). The hook runs on plugin storage in memory that
already holds what each customer saw, their report opened, so every visit is a repeat visit, the common
case: a read, no write, no popup; ``hook owing popups`` is the same visits before the report was opened,
the customers with a mismatch owed its popup (seven of fifteen: a read, a popup, no write). Each
figure is the best block of several (noise only ever adds time); nothing is asserted. Compare two
trees by running it in each, alternating.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

import fulcrum_wealth_checkup
from fulcrum_core.data.provider import DemoDataProvider
from fulcrum_sdk.localtime import local_date
from fulcrum_sdk.storage import MemoryStorage
from fulcrum_sdk.testing import PluginHarness, load_manifest_beside
from fulcrum_wealth_checkup.home import home_slot_offers
from fulcrum_wealth_checkup.scoring import glance

NOW = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)
BLOCKS = 7


def _run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Drive a coroutine that never suspends (storage in memory) without an event loop."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    raise RuntimeError("the hook waited; this benchmark times only hooks that do not")


def _best(loop: Callable[[int], None], calls: int) -> float:
    """The fastest of several blocks of ``calls`` calls, in µs per call."""
    fastest = float("inf")
    for _ in range(BLOCKS):
        start = time.perf_counter_ns()
        loop(calls)
        fastest = min(fastest, (time.perf_counter_ns() - start) / calls / 1000)
    return fastest


def main() -> None:
    """Print µs per glance, per context and per hook call."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="measure everything this many times, in turn")
    parser.add_argument("--calls", type=int, default=6000, help="calls per block")
    args = parser.parse_args()

    provider = DemoDataProvider.from_seed()
    records = provider.customers()
    scopes = load_manifest_beside(fulcrum_wealth_checkup).scopes.all

    def visited(storage: MemoryStorage) -> list[PluginHarness]:
        """A harness per customer on ``storage``, after a first visit (popups and writes, not timed)."""
        made = [
            PluginHarness(
                fulcrum_wealth_checkup, persona=r, provider=provider, storage=storage, scopes=scopes, now=NOW
            )
            for r in records
        ]
        for harness in made:
            _run(home_slot_offers(harness.context()))
        return made

    harnesses = visited(MemoryStorage())
    for harness in harnesses:  # the report opened: what the popups told is seen
        harness.page("report")
    owing = visited(MemoryStorage())  # the report not opened: the popups' notices are still owed
    today = local_date(NOW)

    def glances(n: int) -> None:
        for i in range(n):
            r = records[i % len(records)]
            glance(holdings=r.holdings, accounts=r.accounts, risk=r.risk, today=today)

    def contexts(n: int) -> None:
        for i in range(n):
            harnesses[i % len(harnesses)].context()

    def hooks(n: int) -> None:
        for i in range(n):
            _run(home_slot_offers(harnesses[i % len(harnesses)].context()))

    def owed_hooks(n: int) -> None:
        for i in range(n):
            _run(home_slot_offers(owing[i % len(owing)].context()))

    seen: dict[str, float] = {}
    loops = (
        ("glance", glances), ("context", contexts), ("hook+context", hooks), ("owed+context", owed_hooks),
    )
    for _ in range(args.rounds):
        for name, loop in loops:
            seen[name] = min(seen.get(name, float("inf")), _best(loop, args.calls))
    hook = seen["hook+context"] - seen["context"]
    owed = seen["owed+context"] - seen["context"]
    print(f"{len(records)} demo customers, best of {BLOCKS} blocks × {args.rounds} rounds, µs per call")
    print(f"glance {seen['glance']:.2f}   context {seen['context']:.2f}   hook {hook:.2f}   "
          f"hook owing popups {owed:.2f}")


if __name__ == "__main__":
    main()
