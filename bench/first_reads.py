"""What a fresh worker's first reads cost, with and without the startup warm-up (``data/warmup.py``).

Run: ``uv run fulcrum demo --no-serve`` once (it migrates and seeds the demo database), then
``uv run python bench/first_reads.py [--database URL] [--runs N]``. Each run is a fresh process (what
SQLAlchemy compiled in one is gone in the next): ``cold`` times the first consent read and the first
storage reads for a demo customer; ``warm`` runs the warm-up first, then times the same reads. Prints
the median of the runs in milliseconds; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

CUSTOMER = "c-0755-001"
PLUGIN = "wealth-checkup"


def _one(url: str, mode: str) -> None:
    """In this process: optionally warm, then print the first reads' milliseconds (consents, storage)."""
    from fulcrum_core.data.consents import ConsentStore
    from fulcrum_core.data.db import Database
    from fulcrum_core.data.storage import SqlPluginStorage
    from fulcrum_core.data.warmup import warm_reads

    db = Database(url)
    warm_ms = 0.0
    if mode == "warm":
        began = time.perf_counter()
        warm_reads(db)
        warm_ms = (time.perf_counter() - began) * 1000
    began = time.perf_counter()
    ConsentStore(db).live_scopes(CUSTOMER)
    consents_ms = (time.perf_counter() - began) * 1000
    storage = SqlPluginStorage(db, PLUGIN, cache_ms=0)
    began = time.perf_counter()
    storage.get("last-report")
    storage.counters(["reports"])
    storage_ms = (time.perf_counter() - began) * 1000
    print(f"{warm_ms} {consents_ms} {storage_ms}")
    db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default=f"sqlite:///{Path('.fulcrum') / 'fulcrum.db'}")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--mode", choices=["cold", "warm"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        _one(args.database, args.mode)
        return
    print(f"first reads of a fresh process, median of {args.runs} runs (ms), python {sys.version.split()[0]}")
    print(f"{'mode':6} {'warm-up':>8} {'consents':>9} {'storage':>8}")
    for mode in ("cold", "warm"):
        rows = []
        for _ in range(args.runs):
            out = subprocess.run(  # noqa: S603 - this script, with its own arguments
                [sys.executable, __file__, "--database", args.database, "--mode", mode],
                check=True, capture_output=True, text=True,
            ).stdout.split()
            rows.append([float(x) for x in out])
        warm, consents, storage = (statistics.median(column) for column in zip(*rows, strict=True))
        print(f"{mode:6} {warm:8.2f} {consents:9.2f} {storage:8.2f}")


if __name__ == "__main__":
    main()
