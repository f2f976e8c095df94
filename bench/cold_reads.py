"""Microseconds per cold read of the home page's kinds, one after another, read caches off.

Run: ``uv run python bench/cold_reads.py --database URL [--reads N] [--rounds N]`` (for PostgreSQL,
e.g. ``postgresql+psycopg://postgres@127.0.0.1:5432/test``: the bench works in a schema of its own and
drops it). It reads a customer's live consents (``ConsentStore.live_scopes``) and a plugin document
(``SqlPluginStorage.get``) ``--reads`` times per round, each on a connection from the pool, and prints
the best and median wall time and the median CPU time per read: what a round trip more or less costs
a read, without the page around it. Nothing here is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from fulcrum_core.data.consents import ConsentStore
from fulcrum_core.data.db import Database
from fulcrum_core.data.storage import SqlPluginStorage


def _time(read: Callable[[], object], reads: int, rounds: int) -> tuple[float, float, float]:
    """Best and median wall µs and median CPU µs per read over ``rounds`` rounds of ``reads``."""
    for _ in range(reads // 5):
        read()
    wall: list[float] = []
    cpu: list[float] = []
    for _ in range(rounds):
        started, used = time.perf_counter(), time.process_time()
        for _ in range(reads):
            read()
        wall.append((time.perf_counter() - started) / reads * 1e6)
        cpu.append((time.process_time() - used) / reads * 1e6)
    return min(wall), statistics.median(wall), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default=None, help="SQLAlchemy URL (default: a fresh SQLite file)")
    parser.add_argument("--reads", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database or f"sqlite:///{Path(tmp) / 'bench.db'}"
        if url.startswith("postgresql"):
            admin = sa.create_engine(url)
            with admin.begin() as conn:
                conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
            url += ("&" if "?" in url else "?") + f"options=-csearch_path%3D{schema}"
        db = Database(url)
        try:
            db.upgrade()
            now = datetime.now(UTC)
            consents, storage = ConsentStore(db), SqlPluginStorage(db, "bench")
            consents.grant("c-1", "bench", {"location:city"}, "bench", now + timedelta(days=1), now=now)
            storage.put("doc", {"v": 1})
            reads: dict[str, Callable[[], object]] = {
                "live consents": lambda: consents.live_scopes("c-1", now),
                "plugin document": lambda: storage.get("doc"),
            }
            timed = {name: _time(read, args.reads, args.rounds) for name, read in reads.items()}
        finally:
            db.dispose()
            if url.startswith("postgresql"):
                with admin.begin() as conn:
                    conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
                admin.dispose()
    print(f"{db.dialect}, {args.rounds} rounds of {args.reads} reads, python {sys.version.split()[0]}")
    print("read             best µs  median µs  cpu µs")
    for name, (best, median, cpu) in timed.items():
        print(f"{name:<16} {best:>7.0f} {median:>10.0f} {cpu:>7.0f}")


if __name__ == "__main__":
    main()
