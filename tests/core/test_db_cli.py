"""``fulcrum db reconcile`` and the revision naming behind ``fulcrum db revision``."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from fulcrum_core.cli import main
from fulcrum_core.cli.db import _next_revision_id
from fulcrum_core.data.db import Database
from fulcrum_core.data.models import TransactionRow
from fulcrum_core.data.types import utcnow
from sqlalchemy import select, text


def _config(tmp_path: Path) -> tuple[Path, str]:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    config = tmp_path / "fulcrum.toml"
    config.write_text(f'database_url = "{url}"\n', encoding="utf-8")
    return config, url


def test_reconcile_marks_stale_pending_rows_and_lists_unknown(tmp_path: Path) -> None:
    """A pending row older than ``--older-than`` is marked unknown and reported; fresh ones are left alone."""
    config, url = _config(tmp_path)
    db = Database(url)
    db.upgrade()
    now = utcnow()
    with db.session() as session:
        for tx_id, age in (("stale", timedelta(minutes=10)), ("fresh", timedelta(seconds=1))):
            session.add(TransactionRow(
                id=tx_id, customer_ref="c-1", client_id="fulcrum-app", idempotency_key=tx_id,
                request_hash="0" * 64, type="t.x", plugin_id="p", params={}, amount_fen=100, risk_level=None,
                status="pending",
                created_at=now - age, updated_at=now - age,
            ))
    db.dispose()
    args = ["--config", str(config), "db", "reconcile", "--older-than", "60", "--json"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["marked_unknown"] == ["stale"]
    assert [v["id"] for v in report["unknown"]] == ["stale"]
    text = CliRunner().invoke(main, ["--config", str(config), "db", "reconcile"])
    assert text.exit_code == 0, text.output
    assert "marked unknown: 0; unknown in total: 1" in text.output
    assert "stale" in text.output
    # --resolve builds the host as `fulcrum serve` does and asks each owner again; plugin "p" is not
    # installed here, so the row is left unknown, not asked (and said so, why), never failed.
    state = tmp_path / "state"
    resolved = CliRunner().invoke(
        main, ["--config", str(config), "db", "reconcile", "--resolve"], env={"FULCRUM_STATE_DIR": str(state)}
    )
    assert resolved.exit_code == 0, resolved.output
    assert "not asked: stale  plugin 'p' is not running here" in resolved.output
    assert "asked again: stale" not in resolved.output  # it said it asked, and asked nobody
    assert "unknown in total: 1" in resolved.output


def test_reconcile_resolve_asks_about_pending_rows_it_marks_unknown_in_the_same_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One ``--resolve`` run first marks an abandoned pending row unknown, then asks its plugin about
    it, and reports what is left unknown after the answers; before, it asked first (about nothing) and
    the row waited for the next run."""
    from fulcrum_core.cli import db as db_cli
    from fulcrum_core.transactions.journal import Journal

    config, url = _config(tmp_path)
    db = Database(url)
    db.upgrade()
    long_ago = utcnow() - timedelta(minutes=10)
    with db.session() as session:
        for tx_id in ("settles", "stays"):
            session.add(TransactionRow(
                id=tx_id, customer_ref="c-1", client_id="fulcrum-app", idempotency_key=tx_id,
                request_hash="0" * 64, type="t.x", plugin_id="p", params={}, amount_fen=100, risk_level=None,
                status="pending",
                created_at=long_ago, updated_at=long_ago,
            ))
    db.dispose()
    asked: list[tuple[str, str]] = []

    def plugin_answers(settings: object, not_asked: dict[str, str]) -> list[tuple[str, str]]:
        """The owner answers for "settles" (succeeded) and cannot for "stays"."""
        database = Database(url)
        try:
            journal = Journal(database)
            for row in journal.by_status("unknown"):
                if row.id == "settles":
                    journal.finish(row.id, status="succeeded", result=None, response_status=201,
                                   response_body="{}")
                asked.append((row.id, "succeeded" if row.id == "settles" else "unknown"))
        finally:
            database.dispose()
        return list(asked)

    monkeypatch.setattr(db_cli, "_resolve_unknown", plugin_answers)
    args = ["--config", str(config), "db", "reconcile", "--older-than", "60", "--resolve"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert asked == [("settles", "succeeded"), ("stays", "unknown")]
    assert "asked again: settles  succeeded" in result.output
    assert "marked unknown: 2; unknown in total: 1" in result.output
    assert "  stays  t.x" in result.output
    assert "  settles  t.x" not in result.output


def test_reconcile_resolve_with_the_real_host_asks_about_rows_it_just_marked(tmp_path: Path) -> None:
    """Through the host ``fulcrum serve`` builds: an abandoned pending row is asked about in the run
    that marks it (its plugin is not installed here, so it stays unknown, and says so)."""
    config, url = _config(tmp_path)
    db = Database(url)
    db.upgrade()
    long_ago = utcnow() - timedelta(minutes=10)
    with db.session() as session:
        session.add(TransactionRow(
            id="stale", customer_ref="c-1", client_id="fulcrum-app", idempotency_key="stale",
            request_hash="0" * 64, type="t.x", plugin_id="p", params={}, amount_fen=100, risk_level=None,
            status="pending",
            created_at=long_ago, updated_at=long_ago,
        ))
    db.dispose()
    state = tmp_path / "state"
    resolved = CliRunner().invoke(
        main, ["--config", str(config), "db", "reconcile", "--resolve"], env={"FULCRUM_STATE_DIR": str(state)}
    )
    assert resolved.exit_code == 0, resolved.output
    assert "not asked: stale  plugin 'p' is not running here" in resolved.output
    assert "asked again: stale" not in resolved.output  # it said it asked, and asked nobody
    assert "marked unknown: 1; unknown in total: 1" in resolved.output


def test_reconcile_ends_never_asked_transactions_past_their_retry_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 503 the plugin never saw (``retryable``) that nobody retried within the retry window is ended
    by ``db reconcile`` as a late retry would: failed, no longer retryable, a 422 ``idempotency.expired``
    stored, the 503 kept as its attempt; one inside the window is left retryable. Both outputs count it."""
    from fulcrum_core.cli import db as db_cli
    from fulcrum_core.data.models import TransactionAttemptRow
    from fulcrum_core.transactions.journal import Journal

    config, url = _config(tmp_path)
    config.write_text(config.read_text(encoding="utf-8") + "transaction_retry_window_seconds = 3600\n")
    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    monkeypatch.setattr(db_cli, "utcnow", lambda: now)
    db = Database(url)
    db.upgrade()
    with db.session() as session:
        for tx_id, age in (("stale", timedelta(hours=1)), ("young", timedelta(minutes=59))):
            session.add(
                TransactionRow(
                    id=tx_id,
                    customer_ref="c-1",
                    client_id="fulcrum-app",
                    idempotency_key=f"k-{tx_id}",
                    request_hash="0" * 64,
                    type="t.x",
                    plugin_id="p",
                    params={},
                    amount_fen=100,
                    risk_level=None,
                    status="failed",
                    response_status=503,
                    response_body="{}",
                    retryable=True,
                    created_at=now - age,
                    updated_at=now - age,
                    first_seen_at=now - age,
                )
            )
    result = CliRunner().invoke(main, ["--config", str(config), "db", "reconcile", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["expired"] == ["stale"]
    journal = Journal(db)
    stale, young = journal.get("stale"), journal.get("young")
    assert stale is not None
    assert young is not None
    assert (stale.status, stale.retryable, stale.updated_at) == ("failed", False, now)
    assert stale.response_status == 422
    problem = json.loads(stale.response_body or "")
    assert (problem["code"], problem["field"]) == ("idempotency.expired", "Idempotency-Key")
    assert "'k-stale'" in problem["detail"]
    assert (young.status, young.retryable, young.response_status) == ("failed", True, 503)
    with db.read_session() as session:
        kept = session.scalars(select(TransactionAttemptRow)).all()
        assert [(a.transaction_id, a.attempt, a.response_status) for a in kept] == [("stale", 1, 503)]
    monkeypatch.setattr(db_cli, "utcnow", lambda: now + timedelta(minutes=1))
    again = CliRunner().invoke(main, ["--config", str(config), "db", "reconcile"])
    assert again.exit_code == 0, again.output
    assert "ended past their retry window: 1" in again.output
    assert not journal.get("young").retryable  # type: ignore[union-attr]
    db.dispose()


def test_reconcile_refuses_a_bad_grace_period(tmp_path: Path) -> None:
    """``--older-than 0`` is a usage error, not a sweep of every in-flight transaction."""
    config, _ = _config(tmp_path)
    result = CliRunner().invoke(main, ["--config", str(config), "db", "reconcile", "--older-than", "0"])
    assert result.exit_code == 2


def test_new_revision_ids_are_dated_numbered_and_slugged() -> None:
    """A new revision id is today's date, the next free number, and a slug of the message."""
    db = Database("sqlite://")
    try:
        rev = _next_revision_id(db, "Add coupon ledger (v2)!")
    finally:
        db.dispose()
    assert re.fullmatch(r"\d{8}_\d{2}_add_coupon_ledger_v2", rev), rev


def test_an_upgrade_to_a_revision_already_passed_says_how_to_go_back(tmp_path: Path) -> None:
    """``db upgrade --revision <older>`` on a database past it changes nothing and says so, pointing at
    ``db downgrade`` (it said "already at <head>; nothing to do", as though nothing had been asked)."""
    config, url = _config(tmp_path)
    db = Database(url)
    db.upgrade()
    head = db.current()
    db.dispose()
    args = ["--config", str(config), "db", "upgrade", "--revision", "20261128_02_registry"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert f"at {head}, already past 20261128_02_registry; nothing to do" in result.output
    assert "fulcrum db downgrade 20261128_02_registry" in result.output
    again = CliRunner().invoke(main, ["--config", str(config), "db", "upgrade"])
    assert f"already at {head}; nothing to do" in again.output
    # Revision words that name the database's own revision, or a prefix of one, are not "passed".
    for word in ("heads", "head", str(head)[:11], f"{head}@head"):
        said = CliRunner().invoke(main, ["--config", str(config), "db", "upgrade", "--revision", word])
        assert "already past" not in said.output, (word, said.output)


def test_a_revision_alembic_does_not_know_is_one_error_line(tmp_path: Path) -> None:
    """A mistyped --revision, or a database at a revision this host does not ship (a newer release's),
    is one Error line naming the revision, never alembic's traceback."""
    config, url = _config(tmp_path)
    args = ["--config", str(config), "db", "upgrade", "--revision", "nonexistent"]
    mistyped = CliRunner().invoke(main, args)
    assert mistyped.exit_code == 1, mistyped.output
    assert isinstance(mistyped.exception, SystemExit)
    assert mistyped.output.startswith("Error: "), mistyped.output
    assert "'nonexistent'" in mistyped.output
    db = Database(url)
    db.upgrade()
    with db.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '29990101_01_future'")
    db.dispose()
    for command in ("upgrade", "check"):
        result = CliRunner().invoke(main, ["--config", str(config), "db", command])
        assert result.exit_code == 1, result.output
        assert isinstance(result.exception, SystemExit)
        assert result.output.startswith("Error: "), result.output
        assert "'29990101_01_future'" in result.output


@pytest.mark.parametrize("command", ["current", "check", "reconcile"])
def test_a_read_only_db_command_with_no_database_creates_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    """Run where there is no database, ``db current|check|reconcile`` say so in one ``Error:`` line and
    leave no .fulcrum directory or empty SQLite file behind (before, they created one and reported on it)."""
    monkeypatch.chdir(tmp_path)
    env = {"FULCRUM_CONFIG": None, "FULCRUM_DATABASE_URL": None, "FULCRUM_STATE_DIR": None}
    result = CliRunner().invoke(main, ["db", command], env=env)
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    assert result.output.splitlines() == [
        f"Error: there is no database at {tmp_path / '.fulcrum' / 'fulcrum.db'}: set FULCRUM_DATABASE_URL "
        "(or database_url in --config) to the server's, or create one here with `fulcrum db upgrade` "
        "(or `fulcrum demo`)"
    ]
    assert list(tmp_path.iterdir()) == []


def test_reconcile_on_an_unmigrated_database_is_one_error_line(tmp_path: Path) -> None:
    """A database file without the journal's table is one ``Error:`` line saying to migrate, never the
    data layer's DatabaseUnavailable traceback."""
    config, url = _config(tmp_path)
    Database(url).dispose()
    (tmp_path / "cli.db").touch()
    result = CliRunner().invoke(main, ["--config", str(config), "db", "reconcile"])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    assert len(result.output.splitlines()) == 1
    assert result.output.startswith("Error: the database refused: no such table: "), result.output
    assert "`fulcrum db upgrade`" in result.output


def _packaged_versions() -> set[str]:
    from importlib.resources import files

    return {p.name for p in Path(str(files("fulcrum_core") / "migrations" / "versions")).glob("*.py")}


def test_revision_where_there_is_no_database_refuses_and_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``db revision`` run where there is no database is one ``Error:`` line saying the database must be
    at head first; it neither creates a database nor writes a migration (before, it created an empty
    SQLite file and passed alembic's terse refusal on)."""
    monkeypatch.chdir(tmp_path)
    before = _packaged_versions()
    env = {"FULCRUM_CONFIG": None, "FULCRUM_DATABASE_URL": None, "FULCRUM_STATE_DIR": None}
    result = CliRunner().invoke(main, ["db", "revision", "-m", "x"], env=env)
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    lines = result.output.splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith(f"Error: there is no database at {tmp_path / '.fulcrum' / 'fulcrum.db'}")
    assert "must be at head first" in lines[0]
    assert "`fulcrum db upgrade`" in lines[0]
    assert list(tmp_path.iterdir()) == []
    assert _packaged_versions() == before


@pytest.mark.parametrize("upgraded", [False, True])
def test_revision_on_a_database_behind_head_refuses_and_writes_nothing(
    tmp_path: Path, upgraded: bool
) -> None:
    """On an empty (or older) database ``db revision`` would diff every table it lacks: it refuses in one
    ``Error:`` line naming where the database is and the head, and writes no migration file."""
    config, url = _config(tmp_path)
    older = "20261129_01_transaction_attempts"
    db = Database(url)
    if upgraded:
        db.upgrade()
        with db.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :older"), {"older": older})
    else:
        db.current()
    head = db.heads()[0]
    db.dispose()
    before = _packaged_versions()
    result = CliRunner().invoke(main, ["--config", str(config), "db", "revision", "-m", "x"])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    lines = result.output.splitlines()
    assert len(lines) == 1, result.output
    at = older if upgraded else "base"
    assert lines[0].startswith(f"Error: the database must be at head first: it is at {at}, head {head}")
    assert "`fulcrum db upgrade`" in lines[0]
    assert _packaged_versions() == before
