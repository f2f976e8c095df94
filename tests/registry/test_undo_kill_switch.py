"""Undoing a kill switch is an approval: four eyes on resume and reinstate (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fulcrum_core.data.db import Database
from fulcrum_registry import Conflict, FourEyesViolation, IllegalTransition, RegistryService

from .conftest import platform_registry

Submit = Callable[..., Any]
Approve = Callable[..., Any]

_HIGH = {"slot:home.notice": "show notices", "pension:read": "read the pension balance"}


@pytest.fixture
def registry(db: Database, tmp_path: Path, clock: Any) -> RegistryService:
    """The registry over the migrated platform database (each backend), with two publishers."""
    return platform_registry(db, tmp_path, clock)


@pytest.fixture
def suspended(registry: RegistryService, submit: Submit, approve: Approve) -> int:
    """A low-sensitivity release submitted by alice, approved by bob, suspended by ops."""
    rid = int(submit().id)
    approve(rid)
    registry.suspend(rid, actor="ops", reason="incident 42")
    return rid


@pytest.fixture
def suspended_high(
    registry: RegistryService, submit: Submit, approve: Approve, manifest: Callable[..., Any]
) -> int:
    """A release requesting pension:read (high), approved by bob and carol, suspended by ops."""
    rid = int(submit(manifest=manifest(scopes={"required": _HIGH, "optional": {}})).id)
    approve(rid, "bob")
    approve(rid, "carol")
    registry.suspend(rid, actor="ops", reason="incident 43")
    return rid


def _last(registry: RegistryService, subject: str) -> tuple[str, str, dict[str, Any]]:
    event = registry.audit_events(subject=subject, limit=1000)[-1]
    return event.action, event.actor, event.payload


def test_the_submitter_cannot_resume_their_suspended_release(
    registry: RegistryService, suspended: int
) -> None:
    """Refused in words, whatever the spelling of their name; nothing changes, nothing is audited."""
    before = registry.audit_head()
    for name in ("alice", " Alice "):
        with pytest.raises(FourEyesViolation, match=rf"{name.strip()!r} submitted release {suspended}"):
            registry.resume(suspended, actor=name, reason="fixed it myself")
    assert registry.get_release(suspended).state == "suspended"
    assert registry.audit_head() == before
    assert registry.active_policy() == {}


def test_who_pulled_the_kill_switch_cannot_resume_alone(registry: RegistryService, suspended: int) -> None:
    """Stopping and restarting are two people's calls: ops is refused, dave resumes and is recorded."""
    with pytest.raises(FourEyesViolation, match=r"'OPS' pulled the kill switch.*another reviewer must"):
        registry.resume(suspended, actor="OPS", reason="false alarm")
    assert registry.get_release(suspended).state == "suspended"
    resumed = registry.resume(suspended, actor="dave", reason="incident 42 closed")
    assert resumed.state == "approved"
    action, actor, payload = _last(registry, f"release:{suspended}")
    assert (action, actor, payload["resumers"], payload["reason"]) == (
        "release.resume",
        "dave",
        ["dave"],
        "incident 42 closed",
    )
    assert set(registry.active_policy()) == {"demo"}


def test_an_approver_may_resume(registry: RegistryService, suspended: int) -> None:
    """The rule is about the submitter and the one who suspended, not about who approved before."""
    assert registry.resume(suspended, actor="bob", reason="fixed").state == "approved"


def test_a_high_sensitivity_release_needs_two_people_to_resume(
    registry: RegistryService, suspended_high: int
) -> None:
    """The first agreement is audited and the release stays out of service; a second person resumes it."""
    subject = f"release:{suspended_high}"
    first = registry.resume(suspended_high, actor="dave", reason="patched")
    assert first.state == "suspended"
    assert registry.active_policy() == {}
    action, actor, payload = _last(registry, subject)
    assert (action, actor, payload["agreement"], payload["needed"]) == ("release.resume_agreed", "dave", 1, 2)

    with pytest.raises(FourEyesViolation, match=r"'Dave' already agreed to resume.*a second reviewer must"):
        registry.resume(suspended_high, actor="Dave", reason="again")
    for refused in ("alice", "ops"):
        with pytest.raises(FourEyesViolation):
            registry.resume(suspended_high, actor=refused, reason="me too")

    second = registry.resume(suspended_high, actor="erin", reason="checked the patch")
    assert second.state == "approved"
    assert registry.active_policy()["demo"]["1.0.0"].granted_scopes == set(_HIGH)
    action, actor, payload = _last(registry, subject)
    assert (action, actor, payload["resumers"]) == ("release.resume", "erin", ["dave", "erin"])
    assert registry.verify_audit_chain() is None


def test_agreements_do_not_outlive_the_next_suspension(
    registry: RegistryService, suspended_high: int
) -> None:
    """Once resumed and suspended again, the earlier agreements count for nothing."""
    registry.resume(suspended_high, actor="dave", reason="patched")
    registry.resume(suspended_high, actor="erin", reason="checked")
    registry.suspend(suspended_high, actor="frank", reason="incident 44")
    assert registry.resume(suspended_high, actor="dave", reason="patched again").state == "suspended"
    assert registry.resume(suspended_high, actor="ops", reason="checked again").state == "approved"


def test_resume_refuses_a_release_that_is_not_suspended_before_any_person_rule(
    registry: RegistryService, submit: Submit, approve: Approve
) -> None:
    """The state is checked first, so the submitter of a running release hears about the state."""
    rid = int(submit().id)
    approve(rid)
    with pytest.raises(IllegalTransition) as caught:
        registry.resume(rid, actor="alice", reason="x")
    assert caught.value.current == "approved"


def test_a_publisher_is_reinstated_by_neither_its_submitters_nor_who_suspended_it(
    registry: RegistryService, submit: Submit, approve: Approve
) -> None:
    """Its own people and the one who pulled the switch are refused; a colleague reinstates it."""
    approve(int(submit().id))
    registry.suspend_publisher("pension-dept", actor="ops", reason="data leak under review")
    with pytest.raises(FourEyesViolation, match=r"'alice' submitted release \d+ of 'pension-dept'"):
        registry.reinstate_publisher("pension-dept", actor="alice", reason="we fixed it")
    with pytest.raises(FourEyesViolation, match="pulled the kill switch"):
        registry.reinstate_publisher("pension-dept", actor="ops", reason="cleared")
    assert registry.get_publisher("pension-dept").suspended is True
    assert registry.active_policy() == {}

    back = registry.reinstate_publisher("pension-dept", actor="dave", reason="leak closed")
    assert back.suspended is False
    assert set(registry.active_policy()) == {"demo"}
    action, actor, payload = _last(registry, "publisher:pension-dept")
    assert (action, actor, payload["agreed"]) == ("publisher.reinstated", "dave", ["dave"])


def test_a_publisher_running_a_high_sensitivity_release_needs_two_to_reinstate(
    registry: RegistryService, submit: Submit, approve: Approve, manifest: Callable[..., Any]
) -> None:
    """Reinstating puts its pension:read release back: the first agreement is only recorded."""
    rid = int(submit(manifest=manifest(scopes={"required": _HIGH, "optional": {}})).id)
    approve(rid, "bob")
    approve(rid, "carol")
    registry.suspend_publisher("pension-dept", actor="ops", reason="audit finding")
    assert registry.reinstate_publisher("pension-dept", actor="dave", reason="closed").suspended is True
    assert registry.active_policy() == {}
    action, _actor, payload = _last(registry, "publisher:pension-dept")
    assert (action, payload["agreement"], payload["needed"]) == ("publisher.reinstatement_agreed", 1, 2)
    with pytest.raises(FourEyesViolation, match="already agreed"):
        registry.reinstate_publisher("pension-dept", actor="dave", reason="closed")
    assert registry.reinstate_publisher("pension-dept", actor="erin", reason="closed").suspended is False
    assert set(registry.active_policy()) == {"demo"}


def test_a_publisher_whose_high_release_is_suspended_needs_one(
    registry: RegistryService, suspended_high: int
) -> None:
    """Only releases that would run again count: a suspended one stays off after reinstating."""
    registry.suspend_publisher("pension-dept", actor="ops", reason="audit finding")
    assert registry.reinstate_publisher("pension-dept", actor="dave", reason="closed").suspended is False
    assert registry.active_policy() == {}


def test_reinstating_an_active_publisher_is_still_a_conflict_first(registry: RegistryService) -> None:
    """A publisher that is not suspended is a 409 whoever asks."""
    with pytest.raises(Conflict, match="not suspended"):
        registry.reinstate_publisher("fund-partner", actor="ops", reason="x")


def test_a_first_agreement_to_resume_shows_on_the_release_until_the_second(
    registry: RegistryService, suspended_high: int
) -> None:
    """The suspended release says who agreed (when, why), of how many, and who suspended it; then nothing."""
    assert registry.get_release(suspended_high).pending_resume is None  # nobody agreed yet
    first = registry.resume(suspended_high, actor="dave", reason="patched")
    agreed_at = registry.audit_events(subject=f"release:{suspended_high}", limit=1000)[-1].at
    for read in (
        first,
        registry.get_release(suspended_high),
        *registry.list_releases({"state": "suspended"}).items,
    ):
        pending = read.pending_resume
        assert pending is not None
        assert [(a.by, a.at, a.reason) for a in pending.agreed] == [("dave", agreed_at, "patched")]
        assert (pending.needed, pending.suspended_by) == (2, "ops")
    second = registry.resume(suspended_high, actor="erin", reason="checked")
    assert (second.state, second.pending_resume) == ("approved", None)
    assert registry.get_release(suspended_high).pending_resume is None


def test_a_release_suspended_again_does_not_carry_the_old_agreement(
    registry: RegistryService, suspended_high: int
) -> None:
    """Resumed by two, suspended again: nothing pending; a new first agreement is 1 of 2 on its own."""
    registry.resume(suspended_high, actor="dave", reason="patched")
    registry.resume(suspended_high, actor="erin", reason="checked")
    again = registry.suspend(suspended_high, actor="frank", reason="incident 44")
    assert (again.state, again.pending_resume) == ("suspended", None)
    pending = registry.resume(suspended_high, actor="ops", reason="patched again").pending_resume
    assert pending is not None
    assert ([a.by for a in pending.agreed], pending.needed, pending.suspended_by) == (["ops"], 2, "frank")


def test_a_retired_release_has_no_pending_resume(registry: RegistryService, suspended_high: int) -> None:
    """An agreement to resume stops counting once the release is retired: it can never be resumed."""
    registry.resume(suspended_high, actor="dave", reason="patched")
    retired = registry.retire(suspended_high, actor="ops", reason="replaced")
    assert (retired.state, retired.pending_resume) == ("retired", None)
    assert registry.get_release(suspended_high).pending_resume is None


def test_a_low_sensitivity_release_never_shows_a_pending_resume(
    registry: RegistryService, suspended: int
) -> None:
    """One person resumes it at once: there is no half-agreed state to show."""
    assert registry.get_release(suspended).pending_resume is None
    assert registry.resume(suspended, actor="dave", reason="fixed").pending_resume is None


def test_a_first_agreement_to_reinstate_shows_on_the_publisher_until_the_second(
    registry: RegistryService, submit: Submit, approve: Approve, manifest: Callable[..., Any]
) -> None:
    """get and list show who agreed, of how many; reinstated clears it; suspended again starts afresh."""
    rid = int(submit(manifest=manifest(scopes={"required": _HIGH, "optional": {}})).id)
    approve(rid, "bob")
    approve(rid, "carol")
    suspended = registry.suspend_publisher("pension-dept", actor="ops", reason="audit finding")
    assert suspended.pending_reinstatement is None
    first = registry.reinstate_publisher("pension-dept", actor="dave", reason="closed")
    listed = {p.id: p for p in registry.list_publishers().items}
    assert listed["fund-partner"].pending_reinstatement is None
    for read in (first, registry.get_publisher("pension-dept"), listed["pension-dept"]):
        pending = read.pending_reinstatement
        assert pending is not None
        assert [(a.by, a.reason) for a in pending.agreed] == [("dave", "closed")]
        assert (pending.needed, pending.suspended_by) == (2, "ops")
    back = registry.reinstate_publisher("pension-dept", actor="erin", reason="ok")
    assert (back.suspended, back.pending_reinstatement) == (False, None)
    assert registry.get_publisher("pension-dept").pending_reinstatement is None
    registry.suspend_publisher("pension-dept", actor="frank", reason="second finding")
    assert registry.get_publisher("pension-dept").pending_reinstatement is None
