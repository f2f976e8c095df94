"""Microbenchmark: what the dispatcher adds per hookimpl call, on top of the plugins' own work.

Run: ``uv run python bench/dispatch_calls.py [--rounds N]``. For 30 plugins whose hookimpl returns
one precomputed offer, it times one ``call_many`` (breaker, bulkhead, stats, metrics, validation
included) against calling the same 30 functions directly, and prints the difference per plugin.
Cases: ``async def`` impls that never wait (eager path), plain impls declared ``@nonblocking``
(inline), async impls that do wait once (``await asyncio.sleep(0)``: task + deadline path), and
undeclared plain impls (worker thread). Figures go to ``bench/README.md``; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import msgspec
from fulcrum_core.dispatch.dispatcher import Dispatcher
from fulcrum_core.observability.metrics import Metrics
from fulcrum_core.plugins import LoadedPlugin, get_plugin_manager
from fulcrum_core.settings import Settings
from fulcrum_sdk import hookimpl, nonblocking
from fulcrum_sdk.context import Customer, PluginContext, ScopedData
from fulcrum_sdk.data import StaticDataProvider
from fulcrum_sdk.manifest import Manifest
from fulcrum_sdk.models import Action, LocalizedText, SlotOffer
from fulcrum_sdk.storage import MemoryStorage

PLUGINS = 30
OFFER = SlotOffer(
    slot="home.banner/v1", key="k", title=LocalizedText(zh_CN="标题"), action=Action(uri="fulcrum://x")
)


def _manifest(plugin_id: str) -> Manifest:
    return msgspec.convert(
        {
            "id": plugin_id, "name": {"zh-CN": "插件"}, "description": {"zh-CN": "基准"},
            "publisher": "bench", "kind": "department", "sdk": ">=0.1,<1", "hooks": ["home_slot_offers"],
            "slots": ["home.banner/v1"],
            "scopes": {"required": {"slot:home.banner": "bench"}},
            "owner": {"name": "Bench", "email": "bench@example.com"}, "version": "1.0.0",
        },
        Manifest,
    )


def _make(kind: str, index: int) -> tuple[object, Callable[..., Any]]:
    async def eager(ctx: Any) -> list[SlotOffer]:
        return [OFFER]

    async def waiting(ctx: Any) -> list[SlotOffer]:
        await asyncio.sleep(0)
        return [OFFER]

    @nonblocking
    def nonblocking_sync(ctx: Any) -> list[SlotOffer]:
        return [OFFER]

    def sync(ctx: Any) -> list[SlotOffer]:
        return [OFFER]

    impls: dict[str, Callable[..., Any]] = {
        "eager async": eager, "waiting async": waiting, "nonblocking sync": nonblocking_sync,
    }
    impl = impls.get(kind, sync)

    class Plugin:
        MANIFEST = _manifest(f"p{index:02d}")
        home_slot_offers = staticmethod(hookimpl(impl))

    return Plugin(), impl


def _context(plugin: LoadedPlugin) -> PluginContext:
    from datetime import UTC, datetime

    customer = Customer(id="c", segment="mass", branch="0755", locale="zh-CN")
    data = ScopedData(
        plugin_id=plugin.id, provider=StaticDataProvider({}), customer_ref="c", granted=plugin.granted
    )
    return PluginContext(
        plugin_id=plugin.id, customer=customer, scopes=plugin.granted, data=data, storage=MemoryStorage(),
        now=datetime.now(UTC), request_id="bench",
    )


async def _time(kind: str, rounds: int, settings: Settings) -> tuple[float, float]:
    made = [_make(kind, i) for i in range(PLUGINS)]
    loaded = get_plugin_manager(settings, extra_plugins=[p for p, _ in made], load_entry_points=False)
    plugins = list(loaded.loaded.values())
    calls = [(p, _context(p)) for p in plugins]
    impls = [fn for _, fn in made]
    dispatcher = Dispatcher(settings, observer=Metrics())
    ctx = calls[0][1]

    async def direct() -> None:
        for fn in impls:
            result = fn(ctx)
            if asyncio.iscoroutine(result):
                await result

    for _ in range(50):  # warm-up: breakers, metric children, thread pool
        await dispatcher.call_many("home_slot_offers", calls)
        await direct()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(rounds):
            gathered = await dispatcher.call_many("home_slot_offers", calls)
        dispatched = (time.perf_counter() - start) / rounds
        start = time.perf_counter()
        for _ in range(rounds):
            await direct()
        plain = (time.perf_counter() - start) / rounds
    finally:
        gc.enable()
        dispatcher.close()
    assert not gathered.degraded, gathered.degraded
    assert len(gathered.results) == PLUGINS
    return dispatched, plain


def main() -> None:
    """Time every case and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(state_dir=tmp)
        print(f"python {sys.version.split()[0]}, {PLUGINS} plugins per call_many, {args.rounds} rounds")
        print(f"{'impl kind':18s} {'call_many µs':>13s} {'direct µs':>10s} {'overhead/plugin µs':>19s}")
        for kind in ("eager async", "nonblocking sync", "waiting async", "thread (undeclared)"):
            fast = kind in ("eager async", "nonblocking sync")
            rounds = args.rounds if fast else max(200, args.rounds // 10)
            dispatched, plain = asyncio.run(_time(kind, rounds, settings))
            per = (dispatched - plain) / PLUGINS * 1e6
            print(f"{kind:18s} {dispatched * 1e6:13.1f} {plain * 1e6:10.1f} {per:19.2f}")


if __name__ == "__main__":
    main()
