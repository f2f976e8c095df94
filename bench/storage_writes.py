"""What the storage quota costs a plugin's writes: puts per second with the usage row kept, against the
same rows written with one upsert and no usage row, side by side in one run.

Run: ``uv run python bench/storage_writes.py [--database URL] [--threads N] [--puts N] [--rounds N]``
(default: a fresh SQLite file; for PostgreSQL give its URL, e.g.
``postgresql+psycopg://postgres@127.0.0.1:5432/test``: the bench works in a schema of its own and drops
it). Each round has ``--threads`` threads of one plugin store ``--puts`` new keys each, then replace
them all with larger documents, first through the host's storage (``SqlPluginStorage``, its usage row
kept in each write's transaction), then through the baseline. Prints puts per second and the ratio,
the median of the rounds; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import msgspec
import sqlalchemy as sa
from fulcrum_core.data._upsert import insert_for
from fulcrum_core.data.db import Database
from fulcrum_core.data.models.plugin_storage import PluginDocumentRow
from fulcrum_core.data.storage import SqlPluginStorage
from fulcrum_core.data.types import utcnow

_DOCS = cast(sa.Table, PluginDocumentRow.__table__)


def _baseline(db: Database, plugin_id: str) -> Callable[[str, Any], None]:
    """A put as one ``INSERT … ON CONFLICT DO UPDATE`` in its own transaction, no usage kept."""

    def put(key: str, value: Any) -> None:
        encoded, now = msgspec.json.encode(value).decode(), utcnow()
        row = {"plugin_id": plugin_id, "key": key, "value": encoded, "updated_at": now}
        stmt = insert_for(db.dialect, _DOCS).values(**row).on_conflict_do_update(
            index_elements=[_DOCS.c.plugin_id, _DOCS.c.key], set_={"value": encoded, "updated_at": now}
        )
        with db.engine.begin() as conn:
            conn.execute(stmt)

    return put


def _rate(put: Callable[[str, Any], None], threads: int, puts: int) -> tuple[float, float]:
    """Puts a second storing new keys, then replacing them with larger documents."""

    def run(size: int) -> float:
        def work(i: int) -> None:
            for j in range(puts):
                put(f"k{i}-{j}", {"v": "x" * (size + j % 50)})

        began = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(work, range(threads)))
        return threads * puts / (time.perf_counter() - began)

    return run(10), run(100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default=None, help="SQLAlchemy URL (default: a fresh SQLite file)")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--puts", type=int, default=150, help="new keys per thread, each replaced once")
    parser.add_argument("--rounds", type=int, default=3)
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
            rows: dict[str, list[float]] = {"quota: new": [], "quota: replace": [], "base: new": [],
                                            "base: replace": []}
            for _ in range(args.rounds):
                kept = SqlPluginStorage(db, f"q{uuid.uuid4().hex[:8]}")
                new, replaced = _rate(kept.put, args.threads, args.puts)
                rows["quota: new"].append(new)
                rows["quota: replace"].append(replaced)
                new, replaced = _rate(_baseline(db, f"b{uuid.uuid4().hex[:8]}"), args.threads, args.puts)
                rows["base: new"].append(new)
                rows["base: replace"].append(replaced)
        finally:
            db.dispose()
            if url.startswith("postgresql"):
                with admin.begin() as conn:
                    conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
                admin.dispose()
    print(f"{db.dialect}, {args.threads} threads x {args.puts} puts, {args.rounds} rounds (median puts/s), "
          f"python {sys.version.split()[0]}")
    for kind in ("new", "replace"):
        quota = statistics.median(rows[f"quota: {kind}"])
        base = statistics.median(rows[f"base: {kind}"])
        print(f"{kind:8} with usage row {quota:8.0f}   one upsert {base:8.0f}   ratio {quota / base:.2f}")


if __name__ == "__main__":
    main()
