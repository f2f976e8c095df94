"""A migration on PostgreSQL waits a bounded time for a table another session holds, then gives up
changing nothing, instead of queueing every worker's queries on that table behind it for as long as the
other session lasts (a long transaction, a backup's ``pg_dump``)."""

from __future__ import annotations

import threading
import time

import pytest
from fulcrum_core.data import db as db_module
from fulcrum_core.data.db import Database
from sqlalchemy import create_engine, text

BEFORE = "20261129_06_retryable_index"
"""The revision before ``20261130_01_refresh_grace``, which alters ``oauth_refresh_tokens``."""


@pytest.mark.postgres
def test_an_upgrade_blocked_by_a_held_table_gives_up_and_can_run_again(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A session holding ``oauth_refresh_tokens`` (a read in an open transaction): the upgrade fails
    within its lock timeout with a RuntimeError saying so, the database stays where it was, and once the
    session ends the upgrade runs."""
    monkeypatch.setattr(db_module, "MIGRATION_LOCK_TIMEOUT_MS", 1000)
    db = Database(postgres_url)
    holder = create_engine(postgres_url)
    outcome: list[BaseException | None] = []
    try:
        db.upgrade(BEFORE)
        held = holder.connect()
        held.begin()
        held.execute(text("SELECT count(*) FROM oauth_refresh_tokens"))

        def upgrade() -> None:
            try:
                db.upgrade()
                outcome.append(None)
            except BaseException as exc:
                outcome.append(exc)

        worker = threading.Thread(target=upgrade)
        worker.start()
        worker.join(timeout=15)
        finished = not worker.is_alive()
        held.rollback()  # lets an upgrade that waited without a bound go on, so the test ends
        held.close()
        worker.join(timeout=30)
        assert finished, "the upgrade waited for the held table without a bound"
        assert isinstance(outcome[0], RuntimeError), outcome
        assert "for a lock on a table another session holds" in str(outcome[0])
        assert "nothing changed" in str(outcome[0])
        assert db.current() == BEFORE
        started = time.monotonic()
        db.upgrade()
        assert time.monotonic() - started < 30
        assert db.current() == db.heads()[0]
    finally:
        holder.dispose()
        db.dispose()
