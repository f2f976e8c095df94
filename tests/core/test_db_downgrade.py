"""``fulcrum db downgrade REVISION``: undo a release's migrations (a deploy rolled back), on every backend."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from alembic.script import ScriptDirectory
from click.testing import CliRunner, Result
from fulcrum_core.cli import main
from fulcrum_core.data.db import Database
from sqlalchemy import DateTime, bindparam, text

BEFORE = "20261129_04_release_contents"  # before publisher suspension, whose downgrade may refuse


def _run(tmp_path: Path, url: str, *args: str) -> Result:
    config = tmp_path / "fulcrum.toml"
    config.write_text(f'database_url = "{url}"\n', encoding="utf-8")
    return CliRunner().invoke(main, ["--config", str(config), "db", *args], env={"FULCRUM_CONFIG": None})


AT = bindparam("at", type_=DateTime(timezone=True))
"""Typed: SQLAlchemy writes the moment itself (sqlite3's own datetime adapter is deprecated from 3.12)."""


def _publisher(db: Database, *, suspended: bool) -> None:
    with db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO registry_publishers (id, name, kind, verified, contact, created_at, suspended) "
                "VALUES ('p1', '发布方', 'department', true, 'a@b.example', :at, :s)"
            ).bindparams(AT),
            {"at": datetime.now(UTC), "s": suspended},
        )


def test_downgrade_then_upgrade_keeps_the_data(tmp_path: Path, database_url: str) -> None:
    """It says from where to where, the rows survive, and ``upgrade`` brings the database back to head."""
    db = Database(database_url)
    try:
        db.upgrade()
        _publisher(db, suspended=False)
        down = _run(tmp_path, database_url, "downgrade", BEFORE)
        assert down.exit_code == 0, down.output
        assert f"downgraded from {db.heads()[0]} to {BEFORE}" in down.output
        assert db.current() == BEFORE
        again = _run(tmp_path, database_url, "downgrade", BEFORE)
        assert "already at" in again.output
        assert _run(tmp_path, database_url, "upgrade").exit_code == 0
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT id FROM registry_publishers")).scalars().all() == ["p1"]
        db.check()
    finally:
        db.dispose()


def test_a_refused_downgrade_is_one_line_and_changes_nothing(tmp_path: Path, database_url: str) -> None:
    """A migration that refuses (a suspended publisher) exits 1 with its reason; the database stays."""
    db = Database(database_url)
    try:
        db.upgrade()
        _publisher(db, suspended=True)
        refused = _run(tmp_path, database_url, "downgrade", BEFORE)
        assert refused.exit_code == 1, refused.output
        assert "Error: publisher p1 is suspended" in refused.output
        assert "Traceback" not in refused.output
        assert db.current() == db.heads()[0]
    finally:
        db.dispose()


def test_the_target_must_be_named_and_exist(tmp_path: Path, sqlite_url: str) -> None:
    """No revision is a usage error (nothing is dropped by default); an unknown one is named."""
    assert _run(tmp_path, sqlite_url, "upgrade").exit_code == 0
    missing = _run(tmp_path, sqlite_url, "downgrade")
    assert missing.exit_code == 2
    assert "REVISION" in missing.output
    unknown = _run(tmp_path, sqlite_url, "downgrade", "nope")
    assert unknown.exit_code == 1
    assert "nope" in unknown.output


def test_a_relative_revision_is_taken_as_the_target_not_an_option(tmp_path: Path, sqlite_url: str) -> None:
    """``downgrade -1`` (alembic's "one step back") was refused as "No such option '-1'"."""
    assert _run(tmp_path, sqlite_url, "upgrade").exit_code == 0
    db = Database(sqlite_url)
    try:
        previous = ScriptDirectory.from_config(db.alembic_config()).get_revision("head").down_revision
    finally:
        db.dispose()
    back = _run(tmp_path, sqlite_url, "downgrade", "-1")
    assert back.exit_code == 0, back.output
    assert f"to {previous}" in back.output
    assert _run(tmp_path, sqlite_url, "downgrade", "--nope").exit_code != 0


def test_an_empty_target_is_a_usage_error_not_a_traceback(tmp_path: Path, sqlite_url: str) -> None:
    """``downgrade ""`` (an unset variable in a deploy script) and ``upgrade --revision ""`` reached
    alembic, whose assertion ended the command with a traceback; now a usage error naming the argument,
    and the database stays where it was."""
    assert _run(tmp_path, sqlite_url, "upgrade").exit_code == 0
    db = Database(sqlite_url)
    try:
        head = db.heads()[0]
        for args in (("downgrade", ""), ("downgrade", "  "), ("upgrade", "--revision", "")):
            refused = _run(tmp_path, sqlite_url, *args)
            assert refused.exit_code == 2, refused.output
            assert refused.exception is None or isinstance(refused.exception, SystemExit), refused.exception
            assert "must name a revision" in refused.output
            assert db.current() == head
    finally:
        db.dispose()
