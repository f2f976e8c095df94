"""Suspending a publisher: every plugin it ships stops running, it cannot submit, and it is all audited."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fulcrum_registry import Conflict, InvalidInput, NotFound, PermissionDenied, RegistryService

Submit = Callable[..., Any]
Approve = Callable[..., Any]


def test_suspension_takes_every_release_of_the_publisher_out_of_the_policy(
    registry: RegistryService, submit: Submit, approve: Approve, manifest: Callable[..., dict[str, Any]]
) -> None:
    """The publisher's approved releases leave the policy; another publisher's stay; reinstating restores."""
    ours = submit().id
    approve(ours)
    theirs = submit(
        publisher="branch-0755",
        dist="fulcrum_other",
        package="fulcrum_other",
        entry_points="[fulcrum]\nother = fulcrum_other.plugin\n",
        manifest=manifest("other", publisher="branch-0755", kind="branch"),
    )
    approve(theirs.id)
    assert set(registry.active_policy()) == {"demo", "other"}
    before = registry.policy_version()

    suspended = registry.suspend_publisher("pension-dept", actor="ops", reason="data leak under review")

    assert suspended.suspended is True
    assert registry.get_publisher("pension-dept").suspended is True
    assert set(registry.active_policy()) == {"other"}
    assert registry.policy_version() > before  # hosts polling the version notice at once
    assert registry.get_release(ours).state == "approved"  # releases keep their own state

    reinstated = registry.reinstate_publisher("pension-dept", actor="ops2", reason="cleared")
    assert reinstated.suspended is False
    assert set(registry.active_policy()) == {"demo", "other"}


def test_both_changes_are_audited_with_who_and_why(registry: RegistryService) -> None:
    """``publisher.suspended`` and ``publisher.reinstated`` carry the actor and the reason."""
    registry.suspend_publisher("pension-dept", actor="ops", reason="contract ended")
    registry.reinstate_publisher("pension-dept", actor="ops2", reason="renewed")
    events = registry.audit_events(subject="publisher:pension-dept")
    assert [(e.action, e.actor, e.payload.get("reason")) for e in events[-2:]] == [
        ("publisher.suspended", "ops", "contract ended"),
        ("publisher.reinstated", "ops2", "renewed"),
    ]
    assert registry.verify_audit_chain() is None


def test_a_suspended_publisher_cannot_submit(registry: RegistryService, submit: Submit) -> None:
    """Submission is refused naming the publisher, and nothing is filed, not even the wheel."""
    registry.suspend_publisher("pension-dept", actor="ops", reason="x")
    before = registry.policy_version()
    with pytest.raises(PermissionDenied, match=r"pension-dept.*suspended"):
        submit()
    assert registry.list_releases().total == 0
    assert registry.policy_version() == before
    assert [p for p in registry.artifacts.root.rglob("*") if p.is_file()] == []


def test_releases_of_a_suspended_publisher_cannot_be_approved(
    registry: RegistryService, submit: Submit, approve: Approve
) -> None:
    """An approval would not run anyway: it is refused, and a rejection still works."""
    rid = submit().id
    registry.suspend_publisher("pension-dept", actor="ops", reason="x")
    with pytest.raises(PermissionDenied, match="suspended"):
        approve(rid)
    assert registry.get_release(rid).state == "in_review"
    assert registry.get_release(rid).reviews == ()
    assert registry.reject(rid, reviewer="bob", reasons=["publisher suspended"]).state == "rejected"


def test_suspending_twice_or_reinstating_an_active_publisher_is_a_conflict(
    registry: RegistryService,
) -> None:
    """A no-op is refused so that every audit event records a real change."""
    with pytest.raises(Conflict, match="not suspended"):
        registry.reinstate_publisher("pension-dept", actor="ops", reason="x")
    registry.suspend_publisher("pension-dept", actor="ops", reason="x")
    before = registry.policy_version()
    with pytest.raises(Conflict, match="already suspended"):
        registry.suspend_publisher("pension-dept", actor="ops", reason="x")
    assert registry.policy_version() == before


def test_unknown_publisher_and_blank_reason_are_refused(registry: RegistryService) -> None:
    """A missing publisher is NotFound; a blank reason names the field."""
    with pytest.raises(NotFound):
        registry.suspend_publisher("nobody", actor="ops", reason="x")
    with pytest.raises(InvalidInput) as caught:
        registry.suspend_publisher("pension-dept", actor="ops", reason="  ")
    assert caught.value.field == "reason"
    assert registry.get_publisher("pension-dept").suspended is False


def test_the_catalogue_says_the_publisher_is_suspended(
    registry: RegistryService, submit: Submit, approve: Approve
) -> None:
    """An approved version of a suspended publisher's plugin is not live: the catalogue entry says why."""
    approve(submit().id)
    assert registry.catalogue().items[0].publisher_suspended is False
    registry.suspend_publisher("pension-dept", actor="ops", reason="x")
    entry = registry.catalogue().items[0]
    assert entry.approved_versions == ("1.0.0",)
    assert entry.publisher_suspended is True
