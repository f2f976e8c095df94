"""Revision ``20261130_02_idempotency_client`` on every backend: rows journaled before it get the
placeholder client and keep their customer-wide scope, keys become unique per customer and client,
and its downgrade refuses to merge two clients' transactions under one key."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from alembic import command
from fulcrum_core.data.db import Database
from fulcrum_core.data.errors import DuplicateRow
from fulcrum_core.data.models.transaction import UNRECORDED_CLIENT
from fulcrum_core.data.types import UTCDateTime
from fulcrum_core.transactions.journal import Journal
from sqlalchemy import column, inspect, table, text

BEFORE = "20261130_01_refresh_grace"
AT = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
_MOMENTS = {"created_at", "updated_at", "first_seen_at"}
_NAMES = ("id", "customer_ref", "idempotency_key", "request_hash", "type", "plugin_id", "params", "status",
          "created_at", "updated_at", "first_seen_at", "attempts", "retryable")


def _migrate(db: Database, target: str, *, up: bool) -> None:
    cfg = db.alembic_config()
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        (command.upgrade if up else command.downgrade)(cfg, target)


def _insert(db: Database, tx_id: str, customer: str, key: str, **more: Any) -> None:
    """A journal row written as the revision in place writes it (``more``: ``client_id`` at head)."""
    names = (*_NAMES, *more)
    # Typed datetime columns: SQLAlchemy writes them itself (sqlite3's own datetime adapter is
    # deprecated from Python 3.12).
    transactions = table("transactions", *(
        column(name, UTCDateTime()) if name in _MOMENTS else column(name) for name in names))
    with db.begin() as conn:
        conn.execute(transactions.insert().values(
            id=tx_id, customer_ref=customer, idempotency_key=key, request_hash="h", type="shop.buy",
            plugin_id="shop", params="{}", status="succeeded", created_at=AT, updated_at=AT, first_seen_at=AT,
            attempts=1, retryable=False, **more,
        ))


def _clients(db: Database) -> dict[str, str]:
    with db.engine.connect() as conn:
        return {str(r[0]): str(r[1]) for r in conn.execute(text("SELECT id, client_id FROM transactions"))}


def test_existing_rows_get_the_placeholder_and_keep_their_customers_scope(database_url: str) -> None:
    """Old rows get ``UNRECORDED_CLIENT`` and any client of their customer finds them by key; a new
    row is unique per customer, client and key; downgrade and upgrade again keep every row."""
    db = Database(database_url)
    try:
        db.upgrade(BEFORE)
        _insert(db, "a" * 32, "c-1", "k-1")
        _insert(db, "b" * 32, "c-2", "k-1")
        db.upgrade()
        assert _clients(db) == {"a" * 32: UNRECORDED_CLIENT, "b" * 32: UNRECORDED_CLIENT}
        [unique] = inspect(db.engine).get_unique_constraints("transactions")
        assert unique["column_names"] == ["customer_ref", "client_id", "idempotency_key"]
        journal = Journal(db)
        for client in ("fulcrum-app", "plugin-shop"):
            found = journal.find("c-1", client, "k-1")
            assert found is not None
            assert found.id == "a" * 32
        assert journal.find("c-1", "fulcrum-app", "k-2") is None

        _insert(db, "c" * 32, "c-3", "k-1", client_id="fulcrum-app")
        _insert(db, "d" * 32, "c-3", "k-1", client_id="plugin-shop")
        with pytest.raises(DuplicateRow):
            _insert(db, "e" * 32, "c-3", "k-1", client_id="fulcrum-app")

        with db.begin() as conn:
            conn.execute(text("DELETE FROM transactions WHERE id = :id"), {"id": "d" * 32})
        _migrate(db, BEFORE, up=False)
        with db.engine.connect() as conn:
            ids = conn.execute(text("SELECT id FROM transactions ORDER BY id")).scalars().all()
        assert ids == ["a" * 32, "b" * 32, "c" * 32]
        with pytest.raises(DuplicateRow):  # one transaction per customer and key again
            _insert(db, "e" * 32, "c-3", "k-1")
        db.upgrade()
        assert _clients(db) == dict.fromkeys(("a" * 32, "b" * 32, "c" * 32), UNRECORDED_CLIENT)
        db.check()
    finally:
        db.dispose()


def test_downgrade_refuses_while_two_clients_share_a_customers_key(database_url: str) -> None:
    """The older schema holds one transaction per customer and key: the downgrade names the
    transactions (not the customer) and stops, leaving the database at head with both rows."""
    db = Database(database_url)
    try:
        db.upgrade()
        _insert(db, "c" * 32, "c-3", "k-1", client_id="fulcrum-app")
        _insert(db, "d" * 32, "c-3", "k-1", client_id="plugin-shop")
        with pytest.raises(RuntimeError, match=f"{'c' * 32}, {'d' * 32} share") as info:
            _migrate(db, BEFORE, up=False)
        assert "c-3" not in str(info.value)
        assert db.current() == db.heads()[0]
        assert set(_clients(db)) == {"c" * 32, "d" * 32}
    finally:
        db.dispose()


@pytest.mark.parametrize("status", ["pending", "unknown"])
def test_downgrade_refuses_while_a_clients_transaction_is_unsettled(database_url: str, status: str) -> None:
    """A row journaled under a client that reconciliation may still ask its plugin about was asked
    under the key derived from the client: the older code would ask under the bare key, which the
    plugin does not know, and carry the transaction out twice. The downgrade stops, naming the row;
    settled, the same row no longer holds it back."""
    db = Database(database_url)
    try:
        db.upgrade()
        _insert(db, "c" * 32, "c-3", "k-1", client_id="fulcrum-app")
        _insert(db, "u" * 32, "c-3", "k-0", client_id=UNRECORDED_CLIENT)
        with db.begin() as conn:
            conn.execute(text("UPDATE transactions SET status = :s"), {"s": status})
        with pytest.raises(RuntimeError, match=f"transactions {'c' * 32} are not settled") as info:
            _migrate(db, BEFORE, up=False)
        assert "c-3" not in str(info.value)
        assert db.current() == db.heads()[0]
        with db.begin() as conn:
            conn.execute(text("UPDATE transactions SET status = 'succeeded'"))
        _migrate(db, BEFORE, up=False)
        assert db.current() == BEFORE
    finally:
        db.dispose()
