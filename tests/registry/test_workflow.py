"""Review and lifecycle: every legal and illegal transition, four eyes, two approvers, narrower grants."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fulcrum_registry import (
    REVIEW_CHECKLIST,
    FourEyesViolation,
    IllegalTransition,
    InvalidInput,
    NotFound,
    RegistryService,
)
from fulcrum_registry.models import Review
from fulcrum_registry.workflow import TRANSITIONS, Action, ReleaseState, next_state
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

Submit = Callable[..., Any]
Approve = Callable[..., Any]
Manifest = Callable[..., dict[str, Any]]

HIGH = {
    "slots": ["home.notice/v1"],
    "scopes": {
        "required": {"slot:home.notice": "show notices", "holdings:read": "read holdings to check the mix"},
        "optional": {"profile:risk": "match products to risk tolerance"},
    },
}


@pytest.fixture
def release_in(
    registry: RegistryService, submit: Submit, approve: Approve, manifest: Manifest
) -> Callable[[str], int]:
    """Make a release in the named state, through the service, and return its id."""

    def make(state: str) -> int:
        if state == "checks_failed":
            return int(submit(manifest=manifest(hooks=["nope"])).id)
        rid = int(submit().id)
        if state == "approved":
            approve(rid)
        elif state == "rejected":
            registry.reject(rid, reviewer="bob", reasons=["not needed"])
        elif state == "suspended":
            approve(rid)
            registry.suspend(rid, actor="ops", reason="incident 42")
        elif state == "retired":
            approve(rid)
            registry.retire(rid, actor="ops", reason="replaced")
        assert registry.get_release(rid).state == state
        return rid

    return make


def _act(registry: RegistryService, action: str, rid: int) -> Any:
    checklist = dict.fromkeys(REVIEW_CHECKLIST, True)
    calls: dict[str, Callable[[], Any]] = {
        "approve": lambda: registry.approve(rid, reviewer="carol", checklist=checklist),
        "reject": lambda: registry.reject(rid, reviewer="carol", reasons=["no"]),
        "suspend": lambda: registry.suspend(rid, actor="ops", reason="kill switch"),
        "resume": lambda: registry.resume(rid, actor="ops2", reason="fixed"),
        "retire": lambda: registry.retire(rid, actor="ops", reason="end of life"),
    }
    return calls[action]()


STATES = ["checks_failed", "in_review", "approved", "rejected", "suspended", "retired"]
ACTIONS = ["approve", "reject", "suspend", "resume", "retire"]
LEGAL = {
    ("in_review", "approve"): "approved",
    ("in_review", "reject"): "rejected",
    ("approved", "suspend"): "suspended",
    ("approved", "retire"): "retired",
    ("suspended", "resume"): "approved",
    ("suspended", "retire"): "retired",
}


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("action", ACTIONS)
def test_every_transition(
    registry: RegistryService, release_in: Callable[[str], int], state: str, action: str
) -> None:
    """Legal transitions land in the documented state and are audited; illegal ones raise with the state."""
    rid = release_in(state)
    before = registry.policy_version()
    if (state, action) in LEGAL:
        assert _act(registry, action, rid).state == LEGAL[(state, action)]
        moves = [e for e in registry.audit_events(after=before) if e.action == f"release.{action}"]
        assert [e.payload["to"] for e in moves] == [LEGAL[(state, action)]]
    else:
        with pytest.raises(IllegalTransition) as caught:
            _act(registry, action, rid)
        assert caught.value.current == state
        assert caught.value.action == action
        assert registry.get_release(rid).state == state
        assert registry.policy_version() == before  # nothing written


def test_state_machine_table_matches_the_design() -> None:
    """The transition table is exactly the one DESIGN.md draws (plus submitted's two outcomes)."""
    pairs = {(s.value, a.value): t.value for (s, a), t in TRANSITIONS.items()}
    assert pairs == LEGAL | {
        ("submitted", "pass_checks"): "in_review",
        ("submitted", "fail_checks"): "checks_failed",
    }


def test_submitted_only_leads_to_checks_outcomes() -> None:
    """From submitted only the check outcomes are legal; the error lists them."""
    with pytest.raises(IllegalTransition) as caught:
        next_state(7, ReleaseState.SUBMITTED, Action.APPROVE)
    assert caught.value.allowed == ("pass_checks", "fail_checks")
    assert "release 7 is 'submitted'" in str(caught.value)


def test_final_states_say_so() -> None:
    """An illegal action on a final state says the state is final."""
    with pytest.raises(IllegalTransition, match="'retired' is final"):
        next_state(1, ReleaseState.RETIRED, Action.RESUME)


def test_submitter_cannot_approve_or_reject(
    registry: RegistryService, submit: Submit, approve: Approve
) -> None:
    """Four eyes: the submitter's own approval and rejection are refused."""
    rid = submit(by="alice").id
    with pytest.raises(FourEyesViolation):
        approve(rid, "alice")
    with pytest.raises(FourEyesViolation):
        registry.reject(rid, reviewer="alice", reasons=["withdraw"])
    assert registry.get_release(rid).state == "in_review"


def test_four_eyes_sees_one_person_through_case_and_spacing(
    registry: RegistryService, submit: Submit, approve: Approve, manifest: Manifest
) -> None:
    """A name in another case, spacing or Unicode form neither reviews its own release nor approves twice."""
    rid = submit(by="alice@bank.example").id
    for alias in ("Alice@Bank.example", "ALICE@BANK.EXAMPLE", "ａｌｉｃｅ@bank.example"):
        with pytest.raises(FourEyesViolation):
            approve(rid, alias)
        with pytest.raises(FourEyesViolation):
            registry.reject(rid, reviewer=alias, reasons=["withdraw"])
    high = submit(manifest=manifest(**HIGH), version="1.1.0").id
    approve(high, "bob smith")
    with pytest.raises(FourEyesViolation) as caught:
        approve(high, "Bob  Smith")
    assert str(caught.value).endswith(
        f"already approved release {high}; another reviewer must approve it (each reviewer's approval "
        "counts once)"
    )
    assert registry.get_release(high).state == "in_review"
    assert registry.get_release(rid).state == "in_review"


def test_high_sensitivity_needs_two_distinct_approvers(
    registry: RegistryService, submit: Submit, approve: Approve, manifest: Manifest
) -> None:
    """A release requesting holdings:read stays in review after one approval and is approved after two."""
    rid = submit(manifest=manifest(**HIGH)).id
    first = approve(rid, "bob")
    assert first.state == "in_review"
    assert first.approvals == ("bob",)
    assert first.approvals_needed == 2
    with pytest.raises(FourEyesViolation, match="already approved"):
        approve(rid, "bob")
    second = approve(rid, "carol")
    assert second.state == "approved"
    assert second.approvals == ("bob", "carol")


def test_dropping_the_optional_high_scope_still_needs_two(
    registry: RegistryService, submit: Submit, approve: Approve, manifest: Manifest
) -> None:
    """What is requested sets the bar: withholding an optional high scope does not lower it."""
    body = manifest(
        scopes={"required": {"slot:home.notice": "notices"}, "optional": {"accounts:read": "balances"}}
    )
    rid = submit(manifest=body).id
    assert approve(rid, "bob", grant=["slot:home.notice"]).state == "in_review"
    assert approve(rid, "carol", grant=["slot:home.notice"]).state == "approved"


def test_low_sensitivity_needs_one_approver(submit: Submit, approve: Approve) -> None:
    """A release with only low-sensitivity scopes is approved by one reviewer."""
    assert approve(submit().id, "bob").state == "approved"


def test_two_approvers_grant_the_intersection(submit: Submit, approve: Approve, manifest: Manifest) -> None:
    """With two approvers, a scope either of them withheld is not granted."""
    rid = submit(manifest=manifest(**HIGH)).id
    approve(rid, "bob")
    final = approve(rid, "carol", grant=["slot:home.notice", "holdings:read"])
    assert final.granted_scopes == ("holdings:read", "slot:home.notice")


def test_grant_cannot_exceed_the_request(registry: RegistryService, submit: Submit, approve: Approve) -> None:
    """Granting a scope that was not requested is refused naming the field."""
    rid = submit().id
    with pytest.raises(InvalidInput) as caught:
        approve(rid, grant=["slot:home.notice", "accounts:read"])
    assert caught.value.field == "grant"
    assert "accounts:read" in caught.value.problem
    assert registry.get_release(rid).reviews == ()


def test_required_scopes_cannot_be_withheld(submit: Submit, approve: Approve) -> None:
    """Leaving out a required scope is refused: the reviewer must reject instead."""
    rid = submit().id
    with pytest.raises(InvalidInput, match="reject the release instead"):
        approve(rid, grant=[])


def test_approval_needs_the_full_checklist(registry: RegistryService, submit: Submit) -> None:
    """An approval with an unconfirmed or unknown checklist item is refused naming the item."""
    rid = submit().id
    partial = dict.fromkeys(REVIEW_CHECKLIST, True) | {"risk_disclosed": False}
    with pytest.raises(InvalidInput) as caught:
        registry.approve(rid, reviewer="bob", checklist=partial)
    assert caught.value.field == "checklist.risk_disclosed"
    with pytest.raises(InvalidInput) as caught:
        registry.approve(
            rid, reviewer="bob", checklist=dict.fromkeys(REVIEW_CHECKLIST, True) | {"vibes": True}
        )
    assert caught.value.field == "checklist.vibes"


@pytest.mark.parametrize("reasons", [[], ["   "], "", ["x" * 2001]])
def test_rejection_needs_a_real_reason(registry: RegistryService, submit: Submit, reasons: Any) -> None:
    """A rejection without a usable reason is refused and leaves the release in review."""
    rid = submit().id
    with pytest.raises(InvalidInput):
        registry.reject(rid, reviewer="bob", reasons=reasons)
    assert registry.get_release(rid).state == "in_review"


def test_a_blank_rejection_reason_is_named_as_such(registry: RegistryService, submit: Submit) -> None:
    """A blank reason said "each reason must be 1–2000 characters"; it says what is wrong with it."""
    rid = submit().id
    with pytest.raises(InvalidInput) as caught:
        registry.reject(rid, reviewer="bob", reasons=["fine", "  "])
    assert str(caught.value) == "reasons.1: a rejection reason must not be blank"


def test_rejection_records_reasons_and_refuses_every_scope(registry: RegistryService, submit: Submit) -> None:
    """A rejected release keeps the reviewer's reasons; nothing is granted."""
    rid = submit().id
    rejected = registry.reject(rid, reviewer="bob", reasons="隐私说明不足 / privacy text is missing")
    assert rejected.reviews[0].reasons == ("隐私说明不足 / privacy text is missing",)
    assert rejected.granted_scopes is None
    assert registry.active_policy() == {}


def test_refused_approval_leaves_no_review_row(engine: Engine, submit: Submit, approve: Approve) -> None:
    """A refused decision writes nothing: no review row, no audit event."""
    rid = submit(by="alice").id
    with pytest.raises(FourEyesViolation):
        approve(rid, "alice")
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Review)) == 0


@pytest.mark.parametrize("action", ["suspend", "resume", "retire"])
def test_lifecycle_actions_need_a_reason(
    registry: RegistryService, release_in: Callable[[str], int], action: str
) -> None:
    """Suspending, resuming and retiring without a reason is refused."""
    rid = release_in("suspended" if action == "resume" else "approved")
    with pytest.raises(InvalidInput):
        getattr(registry, action)(rid, actor="ops", reason=" ")


@pytest.mark.parametrize(
    ("reason", "named"),
    [
        ("隐私说明 \u202e001 不足", "U+202E RIGHT-TO-LEFT OVERRIDE at index 5"),
        ("texts mislead\nsee the owner", "U+000A LINE FEED at index 13"),
        ("ok\x1b[31m", "U+001B ESCAPE at index 2"),
        ("one\u2028two", "U+2028 LINE SEPARATOR at index 3"),
    ],
)
def test_a_reason_that_would_read_otherwise_is_refused_naming_it(
    registry: RegistryService, submit: Submit, reason: str, named: str
) -> None:
    """A reason is shown to the publisher, in the audit and on one line of the CLI's listings: a bidi
    control, a control character or a line break is refused like in any one-line display text, naming
    the reason and the character; the release stays in review. Several points are several reasons."""
    rid = submit().id
    with pytest.raises(InvalidInput) as caught:
        registry.reject(rid, reviewer="bob", reasons=["fine", reason])
    assert caught.value.field == "reasons.1"
    assert named in str(caught.value)
    assert registry.get_release(rid).state == "in_review"
    with pytest.raises(InvalidInput) as caught:
        registry.suspend(rid, actor="bob", reason=reason)
    assert caught.value.field == "reason"
    assert named in str(caught.value)
    kept = registry.reject(rid, reviewer="bob", reasons=["家庭 👨\u200d👩\u200d👧 理财\u200e ABC"])
    assert kept.reviews[0].reasons == ("家庭 👨\u200d👩\u200d👧 理财\u200e ABC",)


@pytest.mark.parametrize(
    "decide",
    [
        lambda r: r.approve(9999, reviewer="bob", checklist={}),
        lambda r: r.approve(9999, reviewer="bob", checklist={"bogus": True}),
        lambda r: r.reject(9999, reviewer="bob", reasons=[]),
        lambda r: r.reject(9999, reviewer="bob", reasons=["  "]),
    ],
    ids=["approve-no-checklist", "approve-unknown-item", "reject-no-reason", "reject-blank-reason"],
)
def test_a_missing_release_is_not_found_before_the_decision_is_judged(
    registry: RegistryService, decide: Callable[[RegistryService], Any]
) -> None:
    """A decision the rules refuse, about a release that does not exist, is ``NotFound``: the client's
    first mistake is the release, as for a kill switch (it was ``InvalidInput`` about the checklist)."""
    with pytest.raises(NotFound):
        decide(registry)


def test_an_incomplete_decision_on_a_release_in_review_is_invalid_input(
    registry: RegistryService, submit: Submit
) -> None:
    """The same decisions about a release in review are ``InvalidInput`` naming the field, as before."""
    rid = int(submit().id)
    with pytest.raises(InvalidInput) as approving:
        registry.approve(rid, reviewer="bob", checklist={})
    assert approving.value.field.startswith("checklist.")
    with pytest.raises(InvalidInput) as rejecting:
        registry.reject(rid, reviewer="bob", reasons=[])
    assert rejecting.value.field == "reasons"


def test_who_acts_holding_a_bidi_control_is_refused_naming_the_character(
    registry: RegistryService, submit: Submit
) -> None:
    """A reviewer's name is shown to the publisher and in the audit: one line of display text."""
    rid = submit().id
    with pytest.raises(InvalidInput) as caught:
        registry.reject(rid, reviewer="bob\u202eevil", reasons=["no"])
    assert caught.value.field == "reviewer"
    assert "U+202E RIGHT-TO-LEFT OVERRIDE at index 3" in str(caught.value)
    assert registry.get_release(rid).state == "in_review"
