"""What the host polls: the approved, not suspended releases with their granted scopes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fulcrum_registry import RegistryService

Submit = Callable[..., Any]
Approve = Callable[..., Any]
Manifest = Callable[..., dict[str, Any]]

OPTIONAL = {
    "scopes": {
        "required": {"slot:home.notice": "show notices"},
        "optional": {"location:city": "local offers", "profile:basic": "greet by segment"},
    }
}


def test_empty_registry_has_an_empty_policy(registry: RegistryService) -> None:
    """Nothing approved: nothing may run."""
    assert registry.active_policy() == {}


def test_in_review_releases_are_not_in_the_policy(registry: RegistryService, submit: Submit) -> None:
    """A release waiting for review does not run."""
    submit()
    assert registry.active_policy() == {}


def test_policy_carries_the_narrower_grant(
    registry: RegistryService, submit: Submit, approve: Approve, manifest: Manifest
) -> None:
    """An approval that withholds an optional scope yields a policy without it."""
    rid = submit(manifest=manifest(**OPTIONAL)).id
    approve(rid, grant=["slot:home.notice", "profile:basic"])
    entry = registry.active_policy()["demo"]["1.0.0"]
    assert entry.release_id == rid
    assert entry.granted_scopes == frozenset({"slot:home.notice", "profile:basic"})
    events = [e for e in registry.audit_events() if e.action == "scopes.granted"]
    assert events[-1].payload == {
        "granted": ["profile:basic", "slot:home.notice"],
        "withheld": ["location:city"],
    }


def test_default_grant_is_everything_requested(
    registry: RegistryService, submit: Submit, approve: Approve, manifest: Manifest
) -> None:
    """Without an explicit grant the release gets every scope it asked for."""
    approve(submit(manifest=manifest(**OPTIONAL)).id)
    assert registry.active_policy()["demo"]["1.0.0"].granted_scopes == {
        "slot:home.notice",
        "location:city",
        "profile:basic",
    }


def test_suspension_removes_and_resume_restores(
    registry: RegistryService, submit: Submit, approve: Approve
) -> None:
    """The kill switch takes a release out of the policy; resuming brings it back with the same grant."""
    rid = submit().id
    approve(rid)
    before = registry.active_policy()
    registry.suspend(rid, actor="ops", reason="incident")
    assert registry.active_policy() == {}
    registry.resume(rid, actor="dave", reason="fixed")
    assert registry.active_policy() == before


def test_retired_releases_leave_the_policy(
    registry: RegistryService, submit: Submit, approve: Approve
) -> None:
    """A retired release never runs again."""
    rid = submit().id
    approve(rid)
    registry.retire(rid, actor="ops", reason="end of life")
    assert registry.active_policy() == {}


def test_several_approved_versions_are_live_together(
    registry: RegistryService, submit: Submit, approve: Approve
) -> None:
    """During a rolling upgrade both approved versions are in the policy; suspending one keeps the other."""
    old = submit().id
    approve(old)
    new = submit(version="1.1.0").id
    approve(new)
    assert set(registry.active_policy()["demo"]) == {"1.0.0", "1.1.0"}
    registry.suspend(old, actor="ops", reason="bad build")
    assert set(registry.active_policy()["demo"]) == {"1.1.0"}


def test_policy_version_moves_on_every_change_only(
    registry: RegistryService, submit: Submit, approve: Approve
) -> None:
    """policy_version grows with each write and stays put across reads."""
    start = registry.policy_version()
    rid = submit().id
    after_submit = registry.policy_version()
    assert after_submit > start
    registry.active_policy()
    registry.catalogue()
    assert registry.policy_version() == after_submit
    approve(rid)
    assert registry.policy_version() > after_submit


def _reason(text: str) -> dict[str, Any]:
    return {"scopes": {"required": {"slot:home.notice": text}, "optional": {}}}


def test_approved_manifest_is_the_newest_approved_release(
    registry: RegistryService, submit: Submit, approve: Approve, manifest: Manifest
) -> None:
    """The consent page's manifest: the newest approved version by version order (1.10.0 after
    1.9.0), never a release still in review; none before any approval or once the publisher is
    suspended."""
    assert registry.approved_manifest("demo") is None
    approve(submit(version="1.9.0", manifest=manifest(**_reason("reason of 1.9.0"))).id)
    approve(submit(version="1.10.0", manifest=manifest(**_reason("reason of 1.10.0"))).id)
    submit(version="1.11.0", manifest=manifest(**_reason("reason in review")))
    approved = registry.approved_manifest("demo")
    assert approved is not None
    assert approved.scopes.required == {"slot:home.notice": "reason of 1.10.0"}
    assert registry.approved_manifest("other") is None
    registry.suspend_publisher("pension-dept", actor="platform", reason="audit")
    assert registry.approved_manifest("demo") is None
