"""A fresh worker's first home pages: how long they take and which plugins they leave out.

Run: ``uv run python bench/first_page.py [--runs N]``. It migrates and seeds a demo database once,
then each run is a fresh process (what a worker learned in one is gone in the next): it builds the real
app with the three first-party plugins as ``fulcrum serve`` does (the startup heap frozen), runs its
startup, then calls ``GET /v1/home`` through ASGI for two demo customers in turn, and prints each page's
milliseconds and the plugins it left out. A plugin's first call that loads what it needs, or a
first import on the request path, holds the loop every other plugin of that page waits on. Prints the
median of the runs and how many runs left a plugin out; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import home  # bench/ is not a package
import inprocess

PAGES = 4


def _one(tokens: list[str]) -> None:
    """In this process: build and start the app, then print the first pages' ms and left-out plugins."""
    from fulcrum_core.asgi import freeze_startup_heap

    home.SYNTHETIC = 0
    app = home.real_app()
    freeze_startup_heap()

    async def pages() -> list[tuple[float, list[str]]]:
        stop, _ = await inprocess._lifespan(app)
        out = []
        for i in range(PAGES):
            began = time.perf_counter()
            status, body = await inprocess._call(app, "/v1/home", tokens[i % len(tokens)].encode())
            ms = (time.perf_counter() - began) * 1000
            assert status == 200, (status, body[:200])
            out.append((ms, [d["plugin"] for d in json.loads(body)["degraded"]]))
        await stop()
        return out

    print(json.dumps(inprocess.run(pages(), "uvloop")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        _one(json.loads(args.one))
        return
    with tempfile.TemporaryDirectory(prefix="fulcrum-first-page-", ignore_cleanup_errors=True) as tmp:
        env = home._prepare(Path(tmp), None, caches=True)
        tokens, _ = home._tokens(env, home._demo_customers(2))
        runs = []
        for _ in range(args.runs):
            done = subprocess.run(  # noqa: S603 - this script, with its own arguments
                [sys.executable, __file__, "--one", json.dumps(tokens)],
                env={**os.environ, **env}, capture_output=True, text=True, check=True,
            )
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    python = sys.version.split()[0]
    print(f"a fresh worker's first {PAGES} home pages, {args.runs} runs, python {python} on uvloop")
    print(f"{'page':>4} {'median ms':>10} {'max ms':>8}  runs leaving a plugin out")
    for page in range(PAGES):
        ms = [run[page][0] for run in runs]
        left = [", ".join(run[page][1]) for run in runs if run[page][1]]
        median = statistics.median(ms)
        print(f"{page + 1:>4} {median:>10.1f} {max(ms):>8.1f}  {len(left)} {sorted(set(left))}")


if __name__ == "__main__":
    main()
