"""Microseconds per ``GET /v1/home`` inside one process, no HTTP server: where the app's own time goes.

The load generator and the HTTP server (uvicorn's h11) cost the same for the real app and the bare
endpoint, so this measures only what differs: the app. Each variant builds the app as
``bench/home.py`` does (demo seeded on SQLite, the three first-party plugins approved, 27 synthetic
ones) and calls it through ASGI directly, one request after another::

    uv run python bench/inprocess.py [--requests 3000] [--variant full] [--profile] [--cold]

Variants: ``bare`` (the bare endpoint with the same bytes), ``none`` (no plugins: the platform's
fixed cost), ``synthetic`` (the 27 synthetic plugins only), ``first-party`` (the three only),
``full``, and ``plain`` (all 30 called in a plain loop with no platform around them: the floor).
Each figure is the fastest block of 200 requests (a shared machine's noise only ever adds time).
``--profile`` prints a cProfile of the measured requests (inflated, read it for shares). ``--cold``
runs the real app with its per-worker read caches off (``storage_cache_ms = 0``,
``consent_cache_ms = 0``: every page reads the customer's consents and the plugins' storage from
the database, as nearly every page does in production, where a customer seldom comes back within a
second) and takes turns over ``--customers`` demo customers (default: one, or all 15 with ``--cold``).
The ``cpu`` column is the process's CPU time (every thread) per request over all blocks: with reads
in worker threads, wall time also holds the waits for them.
``--postgres URL`` runs the real app on that PostgreSQL database (reads in worker threads) instead of SQLite.
``--synthetic campaign`` has the synthetic plugins implement ``home_slot_campaigns`` instead of
``home_slot_offers`` (default ``offers``); ``--synthetic offers --synthetic campaign --rounds N``
alternates the two, variant by variant, N times.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import itertools
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent))

import home

FIRST_PARTY = ("wealth-checkup", "pension", "merchant-promo")
VARIANTS = ("bare", "none", "synthetic", "first-party", "full", "plain")
BLOCK = 200
EXTRA_SETTINGS = ""
"""Top-level TOML settings for the real app, before the benchmark's own (``instructions.py`` sets some)."""

Scope = MutableMapping[str, Any]


async def _call(app: Any, path: str, token: bytes) -> tuple[int, bytes]:
    scope: Scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"authorization", b"Bearer " + token)],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000), "state": {},
    }
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    # Between two requests a server's loop runs whatever is ready (the read caches' background
    # refreshes among it); without this a page that never waits would starve them, and the caches'
    # entries would lapse into misses no server sees.
    await asyncio.sleep(0)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


REPORT = home.REPORT
READ_REPORTS = True
"""Each customer opens the wealth check-up's report before anything is measured, as the app's
customers do: a change the check-up found is then no longer owed, and the page has no popup to offer
(the steady state; ``--unread`` keeps the owed notices, a popup offered on every page)."""


async def read_reports(app: Any, tokens: list[bytes]) -> None:
    """Open the wealth check-up's report once for each customer (see :data:`READ_REPORTS`)."""
    if READ_REPORTS:
        for token in tokens:
            await _call(app, REPORT, token)


async def _lifespan(app: Any) -> tuple[Callable[[], Awaitable[None]], asyncio.Task[None]]:
    inbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    started = asyncio.Event()

    async def receive() -> dict[str, str]:
        return await inbox.get()

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "lifespan.startup.complete":
            started.set()

    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    task = asyncio.create_task(app(scope, receive, send))
    await inbox.put({"type": "lifespan.startup"})
    await started.wait()

    async def stop() -> None:
        await inbox.put({"type": "lifespan.shutdown"})
        await task

    return stop, task


LOOPS = ("uvloop", "asyncio")
T = TypeVar("T")


def run(main: Coroutine[Any, Any, T], loop: str) -> T:
    """``asyncio.run`` of ``main`` on ``loop``: uvloop (what ``fulcrum serve`` runs on where it is
    installed) or asyncio's own."""
    if loop == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(main)
    return asyncio.run(main)


def _app(variant: str, state: Path, body: Path, cold: bool) -> Any:
    if variant == "bare":
        os.environ["FULCRUM_BENCH_BODY"] = str(body)
        return home.bare_app()
    if variant == "plain":
        home.SYNTHETIC = 27
        return home.plain_app()
    config = state / "bench.toml"
    text = EXTRA_SETTINGS + "[rate_limit]\nenabled = false\n"
    if cold:
        text = "storage_cache_ms = 0\nconsent_cache_ms = 0\n" + text
    if variant in ("none", "synthetic"):
        text = f"disabled_plugins = {list(FIRST_PARTY)!r}\n".replace("'", '"') + text
    config.write_text(text)
    home.SYNTHETIC = 0 if variant in ("none", "first-party") else 27
    return home.real_app()


async def _measure(
    variant: str, requests: int, profile: bool, state: Path, body: Path, tokens: list[bytes], cold: bool
) -> tuple[float, float, float]:
    app = _app(variant, state, body, cold)
    token = tokens[0]
    turns = itertools.cycle(tokens)
    stop = None
    if variant != "bare":
        stop, _ = await _lifespan(app)
        await asyncio.sleep(2.5)  # the registry watcher's first poll applies the approved releases
    status, page = await _call(app, "/v1/home", token)
    if status != 200:
        raise SystemExit(f"{variant}: /v1/home answered {status}: {page[:300]!r}")
    if variant == "full":
        body.write_bytes(page)  # noqa: ASYNC240 - once, before anything is measured
    if variant not in ("bare", "plain"):
        await read_reports(app, tokens)
    for _ in range(300):
        await _call(app, "/v1/home", next(turns))
    profiler = cProfile.Profile() if profile else None
    if profiler:
        profiler.enable()
    # Blocks of BLOCK requests; the fastest block is the figure (a shared VM's noise only adds time).
    blocks = []
    cpu_started = time.process_time()
    for _ in range(max(1, requests // BLOCK)):
        started = time.perf_counter()
        for _ in range(BLOCK):
            await _call(app, "/v1/home", next(turns))
        blocks.append((time.perf_counter() - started) / BLOCK * 1e6)
    cpu = (time.process_time() - cpu_started) / (len(blocks) * BLOCK) * 1e6
    if profiler:
        profiler.disable()
        pstats.Stats(profiler).sort_stats(os.environ.get("BENCH_SORT", "cumulative")).print_stats(40)
    if stop is not None:
        await stop()
    return min(blocks), statistics.median(blocks), cpu


def main() -> None:
    """Prepare once, then measure each variant in this process."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--variant", choices=VARIANTS, action="append")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--unread", action="store_true",
        help="customers do not open the wealth check-up's report first: its owed notices stay offered",
    )
    parser.add_argument(
        "--synthetic", choices=sorted(home.SYNTHETIC_HOOKS), action="append",
        help="the synthetic plugins' hook (default offers); give both to alternate them",
    )
    parser.add_argument("--rounds", type=int, default=1, help="measure everything this many times, in turn")
    parser.add_argument("--cold", action="store_true", help="the real app with its read caches off")
    parser.add_argument("--customers", type=int, help="demo customers the requests take turns over")
    parser.add_argument(
        "--postgres", metavar="URL", default=os.environ.get("FULCRUM_BENCH_POSTGRES_URL"),
        help="the real app on this PostgreSQL database (migrated and seeded) instead of SQLite",
    )
    parser.add_argument(
        "--loop", choices=LOOPS, default="uvloop", help="the event loop (uvloop: as fulcrum serve runs)"
    )
    args = parser.parse_args()
    global READ_REPORTS
    READ_REPORTS = not args.unread
    modes = args.synthetic or ["offers"]
    variants = args.variant or ["full", "bare", "none", "synthetic", "first-party", "plain"]
    # A read-cache refresh still in a worker thread when an app stops may write SQLite's -wal file
    # after the directory was emptied: the figures are taken by then, so that is no reason to fail.
    with tempfile.TemporaryDirectory(prefix="fulcrum-inprocess-", ignore_cleanup_errors=True) as tmp:
        state = Path(tmp)
        env = home._prepare(state, args.postgres, caches=True)
        os.environ.update(env)
        customers = home._demo_customers(args.customers or (15 if args.cold else 1))
        tokens, _ = home._tokens(env, customers)
        body = state / "body.json"
        if "bare" in variants:  # the bare endpoint serves the full page's bytes: measure that first
            variants = ["full", *(v for v in variants if v != "full")]
        encoded = [t.encode() for t in tokens]
        results: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
        for _ in range(args.rounds):
            for variant in variants:
                for mode in modes:  # alternating, so a busy moment of the machine hits both alike
                    os.environ[home.SYNTHETIC_ENV] = mode
                    measured = run(
                        _measure(variant, args.requests, args.profile, state, body, encoded, args.cold),
                        args.loop,
                    )
                    results.setdefault((variant, mode), []).append(measured)
    caches = "caches off" if args.cold else "caches on"
    database = "PostgreSQL" if args.postgres else "SQLite"
    print(
        f"\n{args.requests} sequential requests per variant over {len(customers)} customer(s), {caches}, "
        f"{database}, "
        f"{args.rounds} round(s), python {sys.version.split()[0]} on {args.loop}"
    )
    print(
        f"{'variant':12s} {'synthetic':9s} {'best':>8s} {'median':>8s} {'cpu':>8s}"
        f"  µs per request, blocks of {BLOCK}"
    )
    for (variant, mode), runs in results.items():
        bests = " ".join(f"{best:.1f}" for best, _, _ in runs)
        best, median = min(r[0] for r in runs), statistics.median(r[1] for r in runs)
        cpu = statistics.median(r[2] for r in runs)
        print(f"{variant:12s} {mode:9s} {best:8.1f} {median:8.1f} {cpu:8.1f}  (best of each round: {bests})")


if __name__ == "__main__":
    main()
