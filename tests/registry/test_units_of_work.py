"""Transactions: concurrent writers are serialised by the audit chain and retried; DB failures translated."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fulcrum_registry import REVIEW_CHECKLIST, Conflict, RegistryService, RegistryUnavailable, audit
from fulcrum_registry.models import Publisher
from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.orm import Session, sessionmaker


def _stale_tail(monkeypatch: pytest.MonkeyPatch, times: int) -> list[int]:
    """Make the next ``times`` audit appends read a stale tail, as a writer racing another would."""
    real = audit._tail
    calls: list[int] = []

    def stale(session: Session) -> tuple[int, str]:
        calls.append(1)
        seq, digest = real(session)
        if len(calls) <= times and seq > 0:
            return seq - 1, digest  # another writer already took seq
        return seq, digest

    monkeypatch.setattr(audit, "_tail", stale)
    return calls


def test_a_lost_race_is_retried_and_the_chain_stays_intact(
    registry: RegistryService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer that collides on the audit seq is rolled back and rerun from fresh reads."""
    calls = _stale_tail(monkeypatch, times=2)
    made = registry.create_publisher(
        {"id": "branch-028", "name": "成都分行", "kind": "branch", "contact": "ops@cd.example"},
        actor="platform",
    )
    assert made.id == "branch-028"
    assert len(calls) == 3
    assert registry.verify_audit_chain() is None


def test_endless_contention_becomes_a_conflict_and_writes_nothing(
    registry: RegistryService, monkeypatch: pytest.MonkeyPatch, engine: Engine
) -> None:
    """When every retry collides the caller gets Conflict, and no half-written row remains."""
    _stale_tail(monkeypatch, times=100)
    with pytest.raises(Conflict, match="retry"):
        registry.create_publisher(
            {"id": "branch-028", "name": "成都分行", "kind": "branch", "contact": "ops@cd.example"},
            actor="platform",
        )
    with Session(engine) as session:
        assert session.get(Publisher, "branch-028") is None
        assert session.scalar(select(func.count()).select_from(Publisher)) == 3


def test_an_unreachable_database_is_unavailable(tmp_path: Path, clock: Any) -> None:
    """Reads and writes against a database that cannot be opened raise RegistryUnavailable."""
    broken = create_engine(f"sqlite:///{tmp_path / 'missing-dir' / 'db.sqlite'}")
    registry = RegistryService(sessionmaker(broken), tmp_path / "artifacts", clock)
    with pytest.raises(RegistryUnavailable):
        registry.active_policy()
    with pytest.raises(RegistryUnavailable):
        registry.create_publisher({"id": "x-y", "name": "x", "kind": "partner", "contact": "a@b"}, actor="p")
    broken.dispose()


def test_missing_tables_are_unavailable_not_a_crash(tmp_path: Path, clock: Any) -> None:
    """A database that was never migrated reports RegistryUnavailable."""
    bare = create_engine(f"sqlite:///{tmp_path / 'bare.db'}")
    with pytest.raises(RegistryUnavailable):
        RegistryService(sessionmaker(bare), tmp_path, clock).policy_version()
    # A read says what the database said, as a write does: no statement, no link (the API shows it).
    with pytest.raises(RegistryUnavailable) as raised:
        RegistryService(sessionmaker(bare), tmp_path, clock).list_releases()
    assert raised.value.detail == "database error: no such table: registry_releases"
    bare.dispose()  # its connection would otherwise be closed by the collector (a ResourceWarning on 3.13)


def test_a_failure_half_way_leaves_nothing_behind(
    registry: RegistryService, submit: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error after the review row and its audit event were added rolls all of it back."""
    rid = submit().id
    before = registry.policy_version()

    def explode(*args: Any) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(RegistryService, "_decide_grants", staticmethod(explode))
    with pytest.raises(RuntimeError):
        registry.approve(rid, reviewer="bob", checklist=dict.fromkeys(REVIEW_CHECKLIST, True))
    assert registry.policy_version() == before
    release = registry.get_release(rid)
    assert release.state == "in_review"
    assert release.reviews == ()


def test_postgres_errors_are_one_line_without_the_statement(
    postgres_url: str, tmp_path: Path, clock: Any
) -> None:
    """PostgreSQL appends "LINE 2: FROM registry_releases" and a caret to its reason; the API showed them."""
    from fulcrum_core.data.db import Database

    db = Database(postgres_url)
    try:
        with pytest.raises(RegistryUnavailable) as raised:
            RegistryService(sessionmaker(db.engine), tmp_path, clock).list_releases()
        assert raised.value.detail == 'database error: relation "registry_releases" does not exist'
    finally:
        db.dispose()
