"""Revision ``20261129_05_publisher_suspension`` round-trips with data on every backend, and its
downgrade refuses to quietly reinstate a suspended publisher (the older schema cannot record it)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic import command
from fulcrum_core.data.db import Database
from sqlalchemy import DateTime, bindparam, text

BEFORE = "20261129_04_release_contents"
ROW = (
    "INSERT INTO registry_publishers (id, name, kind, verified, contact, created_at) "
    "VALUES ('p1', '发布方', 'department', true, 'a@b.example', :at)"
)


AT = bindparam("at", type_=DateTime(timezone=True))
"""Typed: SQLAlchemy writes the moment itself (sqlite3's own datetime adapter is deprecated from 3.12)."""


def _migrate(db: Database, target: str, *, up: bool) -> None:
    cfg = db.alembic_config()
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        (command.upgrade if up else command.downgrade)(cfg, target)


def test_round_trip_keeps_publishers_and_defaults_them_to_not_suspended(database_url: str) -> None:
    """A publisher written before the revision survives upgrade, downgrade and upgrade again."""
    db = Database(database_url)
    try:
        _migrate(db, BEFORE, up=True)
        with db.engine.begin() as conn:
            conn.execute(text(ROW).bindparams(AT), {"at": datetime.now(UTC)})
        _migrate(db, "head", up=True)
        _migrate(db, BEFORE, up=False)
        _migrate(db, "head", up=True)
        with db.engine.connect() as conn:
            rows = conn.execute(text("SELECT id, suspended FROM registry_publishers")).all()
        assert [(r[0], bool(r[1])) for r in rows] == [("p1", False)]
        db.check()
    finally:
        db.dispose()


def test_downgrade_refuses_while_a_publisher_is_suspended(database_url: str) -> None:
    """Dropping the column would let the publisher's plugins run again: the downgrade says so and stops."""
    db = Database(database_url)
    try:
        _migrate(db, "head", up=True)
        with db.engine.begin() as conn:
            conn.execute(text(ROW).bindparams(AT), {"at": datetime.now(UTC)})
            conn.execute(text("UPDATE registry_publishers SET suspended = true"))
        with pytest.raises(RuntimeError, match=r"^publisher p1 is suspended, .*: reinstate it "):
            _migrate(db, BEFORE, up=False)
        assert db.current() == db.heads()[0]
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT suspended FROM registry_publishers")).scalar_one()
    finally:
        db.dispose()
