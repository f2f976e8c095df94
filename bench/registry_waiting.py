"""What a reviewer's ``waiting`` listing costs as the registry's audit log grows: milliseconds for
``list_releases(waiting, reviewer)`` and ``list_publishers(waiting, reviewer)`` over histories of
several sizes, side by side with the listing for anyone (``waiting`` alone).

Run: ``uv run python bench/registry_waiting.py [--database URL] [--audit-rows N ...] [--calls N]``
(default: a fresh SQLite file; for PostgreSQL give its URL, e.g.
``postgresql+psycopg://postgres@127.0.0.1:5432/test``: the bench works in a schema of its own and drops
it). Each size is a fresh database holding a finished history (releases submitted, approved, suspended,
agreed to resume and resumed by a pool of 400 people, about seven audit rows a release) and the same
small queue waiting on top of it: two releases with one approval of two, one half agreed to resume,
one publisher half agreed to reinstate. Prints the median of ``--calls`` calls; nothing is asserted.
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
from typing import Any

import sqlalchemy as sa
from fulcrum_core.data.db import Database
from fulcrum_registry import RegistryService
from fulcrum_registry.audit import last_seq
from fulcrum_registry.models import AuditEvent, Release, Review
from sqlalchemy.orm import Session, sessionmaker

_PEOPLE = [f"Reviewer {n:03d}@bank.example" for n in range(400)]
_T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _release(publisher: str, state: str, by: str, n: int) -> Release:
    return Release(
        plugin_id=None, publisher_id=publisher, version=f"1.0.{n}", manifest=None,
        artifact_sha256=f"{n:064x}", artifact_size=1, artifact_filename=f"x-1.0.{n}-py3-none-any.whl",
        state=state, submitted_by=by, submitted_at=_T0, updated_at=_T0, checks=[], contents=None,
    )


def _review(release_id: int, by: str) -> Review:
    return Review(release_id=release_id, reviewer=by, decision="approve", reasons=[], checklist={},
                  granted=[], at=_T0)


class _Log:
    """Audit rows appended after the newest one (their hashes are not what the listing reads)."""

    def __init__(self, session: Session) -> None:
        self.session, self.seq = session, last_seq(session)

    def add(self, actor: str, action: str, subject: str) -> None:
        self.seq += 1
        self.session.add(AuditEvent(seq=self.seq, at=_T0 + timedelta(seconds=self.seq), actor=actor,
                                    action=action, subject=subject, payload={}, prev_hash="0" * 64,
                                    hash="0" * 64))


def _fill(factory: Callable[[], Session], audit_rows: int) -> None:
    """A finished history of about ``audit_rows`` audit rows, then the small waiting queue."""
    with factory.begin() as session:  # type: ignore[attr-defined]
        log = _Log(session)
        n = 0
        while log.seq < audit_rows:
            n += 1
            by, first, second, ops = (_PEOPLE[(n * k) % len(_PEOPLE)] for k in (1, 7, 13, 29))
            row = _release("pension-dept", "approved", by, n)
            session.add(row)
            session.flush()
            session.add_all([_review(row.id, first), _review(row.id, second)])
            subject = f"release:{row.id}"
            for actor, action in ((by, "release.submitted"), (by, "release.pass_checks"),
                                  (first, "review.approved"), (second, "release.approve"),
                                  (ops, "release.suspend"), (first, "release.resume_agreed"),
                                  (second, "release.resume")):
                log.add(actor, action, subject)
        for k in range(2):  # one approval of two
            row = _release("pension-dept", "in_review", "alice", n + 1 + k)
            session.add(row)
            session.flush()
            session.add(_review(row.id, "bob"))
        row = _release("fund-partner", "suspended", "paul", n + 3)  # one agreement of two to resume
        session.add(row)
        session.flush()
        log.add("ops", "release.suspend", f"release:{row.id}")
        log.add("dave", "release.resume_agreed", f"release:{row.id}")
        session.execute(sa.text("UPDATE registry_publishers SET suspended = :t WHERE id = 'fund-partner'"),
                        {"t": True})
        log.add("ops", "publisher.suspended", "publisher:fund-partner")
        log.add("rita", "publisher.reinstatement_agreed", "publisher:fund-partner")


def _ms(call: Callable[[], Any], calls: int) -> float:
    times = []
    for _ in range(calls):
        began = time.perf_counter()
        call()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def _measure(url: str, audit_rows: int, calls: int, tmp: Path) -> tuple[int, dict[str, float]]:
    db = Database(url)
    try:
        db.upgrade()
        factory = sessionmaker(bind=db.engine, expire_on_commit=False)
        service = RegistryService(factory, tmp / "artifacts",
                                  read_session_factory=sessionmaker(bind=db.reader, expire_on_commit=False))
        for pid, kind in (("pension-dept", "department"), ("fund-partner", "partner")):
            service.create_publisher({"id": pid, "name": pid, "kind": kind, "contact": f"ops@{pid}.example"},
                                     actor="platform")
        _fill(factory, audit_rows)
        if db.dialect == "postgresql":  # the statistics autovacuum would gather, so plans fit the sizes
            with db.engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
        rows = service.policy_version()
        mine = {"waiting": True, "reviewer": "erin"}
        if (service.list_releases(mine).total, service.list_publishers(mine).total) != (3, 1):
            raise SystemExit("the waiting queue is not what the bench built")
        return rows, {
            "releases, anyone": _ms(lambda: service.list_releases({"waiting": True}), calls),
            "releases, reviewer": _ms(lambda: service.list_releases(mine), calls),
            "publishers, anyone": _ms(lambda: service.list_publishers({"waiting": True}), calls),
            "publishers, reviewer": _ms(lambda: service.list_publishers(mine), calls),
        }
    finally:
        db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default=None, help="SQLAlchemy URL (default: a fresh SQLite file)")
    parser.add_argument("--audit-rows", type=int, nargs="+", default=[1000, 9000, 36000])
    parser.add_argument("--calls", type=int, default=50)
    args = parser.parse_args()
    results = []
    for size in args.audit_rows:
        with tempfile.TemporaryDirectory() as tmp:
            url = args.database or f"sqlite:///{Path(tmp) / 'bench.db'}"
            admin, schema = None, f"bench_{uuid.uuid4().hex[:8]}"
            if url.startswith("postgresql"):
                admin = sa.create_engine(url)
                with admin.begin() as conn:
                    conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
                url += ("&" if "?" in url else "?") + f"options=-csearch_path%3D{schema}"
            try:
                results.append(_measure(url, size, args.calls, Path(tmp)))
            finally:
                if admin is not None:
                    with admin.begin() as conn:
                        conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
                    admin.dispose()
    print(f"{url.split(':', 1)[0]}, median of {args.calls} calls (ms), python {sys.version.split()[0]}")
    print(f"{'audit rows':>10}  " + "  ".join(f"{name:>20}" for name in results[0][1]))
    for rows, figures in results:
        print(f"{rows:>10}  " + "  ".join(f"{ms:>20.2f}" for ms in figures.values()))


if __name__ == "__main__":
    main()
