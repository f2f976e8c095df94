"""The hash-chained audit log: every change recorded, and any changed, deleted or reordered row caught."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from fulcrum_registry import BrokenLink, InvalidInput, RegistryService
from fulcrum_registry.audit import GENESIS
from sqlalchemy import Engine, text

Submit = Callable[..., Any]
Approve = Callable[..., Any]


@pytest.fixture
def history(registry: RegistryService, submit: Submit, approve: Approve) -> int:
    """A registry with a few releases decided and suspended; returns the number of audit rows."""
    first = submit().id
    approve(first)
    registry.suspend(first, actor="ops", reason="incident")
    second = submit(version="1.1.0").id
    registry.reject(second, reviewer="bob", reasons=["needs work"])
    return registry.policy_version()


def sql(engine: Engine, statement: str, **params: Any) -> None:
    """Run raw SQL as an attacker with database access would."""
    with engine.begin() as conn:
        conn.execute(text(statement), params)


def test_an_untouched_chain_verifies(registry: RegistryService, history: int) -> None:
    """A chain written by the service holds from the first row to the last."""
    assert history >= 10
    assert registry.verify_audit_chain() is None


def test_an_empty_chain_verifies(engine: Engine, tmp_path: Any, clock: Any) -> None:
    """No rows: nothing to break."""
    from sqlalchemy.orm import sessionmaker

    assert RegistryService(sessionmaker(engine), tmp_path, clock).verify_audit_chain() is None


def test_the_hash_is_sha256_over_canonical_json_and_the_previous_hash(
    registry: RegistryService, history: int
) -> None:
    """Anyone can recompute a row's hash from its published fields, as the docstring specifies."""
    first, second = registry.audit_events(limit=2)
    assert first.prev_hash == GENESIS
    assert second.prev_hash == first.hash
    body = {
        "seq": second.seq,
        "at": second.at.isoformat(timespec="microseconds"),
        "actor": second.actor,
        "action": second.action,
        "subject": second.subject,
        "payload": second.payload,
    }
    expected = hashlib.sha256(
        msgspec.json.encode(body, order="sorted") + second.prev_hash.encode()
    ).hexdigest()
    assert second.hash == expected


def test_every_state_change_and_grant_is_audited(
    registry: RegistryService, submit: Submit, approve: Approve
) -> None:
    """Submission, checks, claim, approval, grant and suspension each leave an event naming the actor."""
    rid = submit(by="alice").id
    approve(rid, "bob")
    registry.suspend(rid, actor="ops", reason="incident 7")
    events = [
        (e.actor, e.action) for e in registry.audit_events() if e.subject in (f"release:{rid}", "plugin:demo")
    ]
    assert events == [
        ("alice", "plugin.claimed"),
        ("alice", "release.submitted"),
        ("alice", "release.pass_checks"),
        ("bob", "review.approved"),
        ("bob", "release.approve"),
        ("bob", "scopes.granted"),
        ("ops", "release.suspend"),
    ]
    assert registry.audit_events()[-1].payload["reason"] == "incident 7"


def test_a_changed_row_is_caught(registry: RegistryService, engine: Engine, history: int) -> None:
    """Editing a row's content breaks its own hash."""
    sql(engine, "UPDATE registry_audit SET actor = 'mallory' WHERE seq = 5")
    assert registry.verify_audit_chain() == BrokenLink(
        5, "hash does not match the row's content (the row was changed)"
    )


def test_a_changed_payload_is_caught(registry: RegistryService, engine: Engine, history: int) -> None:
    """Editing the JSON payload (say, the granted scopes) breaks the hash too."""
    sql(engine, "UPDATE registry_audit SET payload = :p WHERE seq = 3", p='{"forged": true}')
    link = registry.verify_audit_chain()
    assert link is not None
    assert link.seq == 3


def test_a_rehashed_row_breaks_the_next_link(registry: RegistryService, engine: Engine, history: int) -> None:
    """Recomputing a changed row's hash does not help: the next row still points at the old hash."""
    sql(engine, "UPDATE registry_audit SET actor = 'mallory' WHERE seq = 5")
    row = next(e for e in registry.audit_events(after=4, limit=1))
    from fulcrum_registry.audit import compute_hash

    forged = compute_hash(
        seq=row.seq,
        at=row.at,
        actor=row.actor,
        action=row.action,
        subject=row.subject,
        payload=row.payload,
        prev_hash=row.prev_hash,
    )
    sql(engine, "UPDATE registry_audit SET hash = :h WHERE seq = 5", h=forged)
    link = registry.verify_audit_chain()
    assert link is not None
    assert link.seq == 6
    assert "prev_hash" in link.reason


@pytest.mark.parametrize("seq", [1, 4])
def test_a_deleted_row_is_caught(registry: RegistryService, engine: Engine, history: int, seq: int) -> None:
    """Removing a row (even the first) leaves a gap the walk reports at the next row."""
    sql(engine, "DELETE FROM registry_audit WHERE seq = :s", s=seq)
    link = registry.verify_audit_chain()
    assert link == BrokenLink(seq + 1, f"expected seq {seq}: rows missing")


def test_reordered_rows_are_caught(registry: RegistryService, engine: Engine, history: int) -> None:
    """Swapping two rows' positions breaks the chain at the first of them."""
    sql(engine, "UPDATE registry_audit SET seq = -1 WHERE seq = 6")
    sql(engine, "UPDATE registry_audit SET seq = 6 WHERE seq = 7")
    sql(engine, "UPDATE registry_audit SET seq = 7 WHERE seq = -1")
    link = registry.verify_audit_chain()
    assert link is not None
    assert link.seq == 6


def test_a_truncated_tail_is_caught_by_an_outside_anchor(
    registry: RegistryService, engine: Engine, history: int
) -> None:
    """Dropping the newest rows keeps the chain valid, so the head must be anchored elsewhere."""
    anchored = registry.audit_head()
    sql(engine, "DELETE FROM registry_audit WHERE seq = :s", s=history)
    assert registry.verify_audit_chain() is None  # the documented limit of any hash chain
    assert registry.audit_head() != anchored
    assert registry.audit_head()[0] == history - 1


@pytest.mark.parametrize(
    ("kwargs", "field"), [({"limit": 0}, "limit"), ({"limit": 1001}, "limit"), ({"after": -1}, "after")]
)
def test_audit_listing_refuses_bad_ranges(
    registry: RegistryService, kwargs: dict[str, int], field: str
) -> None:
    """Out-of-range paging arguments are refused naming the argument."""
    with pytest.raises(InvalidInput) as caught:
        registry.audit_events(**kwargs)
    assert caught.value.field == field


def test_audit_listing_pages_in_order(registry: RegistryService, history: int) -> None:
    """Pages of events follow seq without gaps or repeats."""
    seen = []
    after = 0
    while page := registry.audit_events(after=after, limit=3):
        seen += [e.seq for e in page]
        after = page[-1].seq
    assert seen == list(range(1, history + 1))
