"""Microbenchmark: the first-party plugins' ``home_slot_offers`` alone, against the host's cached storage.

Run: ``uv run python bench/plugin_hooks.py [--rounds N] [--profile]``. For every seeded demo customer
it builds the context a page would (every requested scope granted and consented, the data records
already read, the plugin's storage as the host's cached view on a SQLite file, its entries warm)
and drives the hook's coroutine with one ``send``, as the dispatcher does for a hook that never
waits. Prints µs per call (best block of all customers in turn); ``--profile`` prints a cProfile by
own time. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import fulcrum_merchant_promo
import fulcrum_pension
from fulcrum_core.data.db import Database
from fulcrum_core.data.provider import DemoDataProvider
from fulcrum_core.data.storage import SqlPluginStorage
from fulcrum_sdk.context import Customer, CustomerRecords, PluginContext, ScopedData
from fulcrum_sdk.scopes import CUSTOMER_DATA_SCOPES
from fulcrum_sdk.testing import load_manifest_beside

NOW = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)
"""A late-November afternoon in China: the pension's year-end notice is on."""
BLOCK = 2000
TTL_MS = 3_600_000
"""Long enough that no entry reaches its refresh point while measuring: the steady hit path."""

Hook = Callable[[PluginContext], Coroutine[Any, Any, Any]]


def _contexts(plugin: ModuleType, db: Database, provider: DemoDataProvider) -> list[PluginContext]:
    manifest = load_manifest_beside(plugin)
    scopes = manifest.scopes.all
    storage = SqlPluginStorage(db, manifest.id, cache_ms=TTL_MS)
    contexts = []
    for record in provider.customers():
        records = CustomerRecords(provider, record.id)
        records.prefetch(["profile", "pension", "city"])
        records.seal()
        consented = frozenset(CUSTOMER_DATA_SCOPES) if manifest.kind == "partner" else None
        p = record.profile
        contexts.append(PluginContext(
            plugin_id=manifest.id,
            customer=Customer(id=record.id, segment=p.segment, branch=p.branch, locale=p.locale),
            scopes=scopes,
            data=ScopedData.over(records, manifest.id, scopes, consented),
            storage=storage,
            now=NOW,
        ))
    return contexts


def _run(hook: Hook, ctx: PluginContext) -> Any:
    coro = hook(ctx)
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise SystemExit(f"{ctx.plugin_id}: the hook suspended (a cache miss) while measuring")


async def _measure(hook: Hook, contexts: list[PluginContext], blocks: int) -> float:
    for ctx in contexts:  # fill the cache (misses suspend: await them once)
        await hook(ctx)
    best = float("inf")
    for _ in range(blocks):
        calls = 0
        started = time.perf_counter_ns()
        while calls < BLOCK:
            for ctx in contexts:
                _run(hook, ctx)
            calls += len(contexts)
        best = min(best, (time.perf_counter_ns() - started) / calls / 1000)
        await asyncio.sleep(0)
    return best


def main() -> None:
    """Measure each plugin's hook, ``--rounds`` times in turn."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--blocks", type=int, default=15)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    provider = DemoDataProvider.from_seed()
    with tempfile.TemporaryDirectory(prefix="fulcrum-hooks-") as tmp:
        db = Database(f"sqlite:///{Path(tmp) / 'bench.db'}")
        db.upgrade()
        plugins = {"pension": fulcrum_pension, "merchant-promo": fulcrum_merchant_promo}
        cases = {name: (m.home_slot_offers, _contexts(m, db, provider)) for name, m in plugins.items()}
        results: dict[str, list[float]] = {name: [] for name in cases}
        profiler = cProfile.Profile() if args.profile else None
        for _ in range(args.rounds):
            for name, (hook, contexts) in cases.items():
                if profiler:
                    profiler.enable()
                results[name].append(asyncio.run(_measure(hook, contexts, args.blocks)))
                if profiler:
                    profiler.disable()
        db.dispose()
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
    customers, version = len(provider.customers()), sys.version.split()[0]
    print(f"home_slot_offers, µs per call over {customers} customers, python {version}")
    for name, runs in results.items():
        print(f"{name:15s} best {min(runs):6.2f}   rounds: {' '.join(f'{r:.2f}' for r in runs)}")


if __name__ == "__main__":
    main()
