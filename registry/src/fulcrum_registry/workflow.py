"""The release state machine and the review rules, as pure data and functions the service obeys.

    submitted ──checks──▶ checks_failed                         (final; fix and submit again)
        └─────checks──▶ in_review ──approve──▶ approved ◀──resume── suspended
                            └──────reject───▶ rejected   approved ──suspend──▶ suspended
                                                         approved | suspended ──retire──▶ retired

Decisions recorded here (and why):

* **Four eyes.** Nobody decides on a release they submitted, and each reviewer's approval counts once.
  People are compared by ``person_key``: ``Alice@Bank.example`` and ``alice@bank.example`` are one
  person, not a submitter and a distinct reviewer.
* **Two approvers** are needed when the release *requests* any ``Sensitivity.HIGH`` scope, even if the
  first approver leaves an optional high scope out of the grant: the request itself is the risk a
  second pair of eyes must see.
* **Grants only narrow.** An approval may grant a subset of the requested scopes, never a scope that was
  not requested. Required scopes cannot be dropped: the manifest says the plugin cannot work without
  them, so a reviewer who will not grant one must reject the release (with that as the reason). Only
  optional scopes can be withheld. With two approvers the release gets the intersection of their
  grants, so no scope is granted that either approver withheld.
* **Undoing a kill switch** (resume, reinstating a publisher) is four eyes too: see ``undo``.
* **Checklist.** Approving needs every item of ``REVIEW_CHECKLIST`` confirmed; rejecting needs a reason.
"""

from __future__ import annotations

import enum
import unicodedata
from collections.abc import Iterable, Mapping

from fulcrum_sdk.display import display_text_problem
from fulcrum_sdk.scopes import SCOPES, Sensitivity

from fulcrum_registry.errors import IllegalTransition, InvalidInput

__all__ = [
    "MAX_NAME",
    "REVIEW_CHECKLIST",
    "TRANSITIONS",
    "Action",
    "ReleaseState",
    "approvals_needed",
    "check_checklist",
    "check_grant",
    "check_reasons",
    "high_sensitivity",
    "name_problem",
    "next_state",
    "person_key",
]


class ReleaseState(enum.StrEnum):
    """Where a release is in its life."""

    SUBMITTED = "submitted"
    CHECKS_FAILED = "checks_failed"
    IN_REVIEW = "in_review"
    APPROVED = "approved"
    REJECTED = "rejected"
    SUSPENDED = "suspended"
    RETIRED = "retired"


class Action(enum.StrEnum):
    """What can be done to a release."""

    PASS_CHECKS = "pass_checks"  # noqa: S105 - an action name, not a secret
    FAIL_CHECKS = "fail_checks"
    APPROVE = "approve"
    REJECT = "reject"
    SUSPEND = "suspend"
    RESUME = "resume"
    RETIRE = "retire"


_S = ReleaseState
TRANSITIONS: Mapping[tuple[ReleaseState, Action], ReleaseState] = {
    (_S.SUBMITTED, Action.PASS_CHECKS): _S.IN_REVIEW,
    (_S.SUBMITTED, Action.FAIL_CHECKS): _S.CHECKS_FAILED,
    (_S.IN_REVIEW, Action.APPROVE): _S.APPROVED,
    (_S.IN_REVIEW, Action.REJECT): _S.REJECTED,
    (_S.APPROVED, Action.SUSPEND): _S.SUSPENDED,
    (_S.SUSPENDED, Action.RESUME): _S.APPROVED,
    (_S.APPROVED, Action.RETIRE): _S.RETIRED,
    (_S.SUSPENDED, Action.RETIRE): _S.RETIRED,
}
"""Every legal (state, action) pair and the state it leads to; anything else is illegal."""

REVIEW_CHECKLIST: Mapping[str, str] = {
    "data_minimised": "每个申请的权限都有必要且理由属实 / every scope is needed and its reason true",
    "display_text_reviewed": "展示文案（中文）准确、无误导 / display text is accurate, not misleading",
    "owner_reachable": "负责人联系方式有效 / the owner contact is valid",
    "risk_disclosed": "产品风险与适当性已说明 / product risk and suitability are disclosed",
}
"""What a reviewer confirms before approving; keys are stable ids stored with each review."""


def next_state(release_id: int, current: ReleaseState, action: Action) -> ReleaseState:
    """The state ``action`` leads to from ``current``, or ``IllegalTransition`` carrying ``current``."""
    target = TRANSITIONS.get((current, action))
    if target is None:
        allowed = tuple(a.value for (s, a) in TRANSITIONS if s is current)
        raise IllegalTransition(release_id, action.value, current.value, allowed)
    return target


MAX_NAME = 200
"""The longest name of who acts the registry records (``submitted_by``, ``reviewer``, audit ``actor``)."""


def name_problem(name: str) -> str | None:
    """Why ``name`` (stripped) cannot stand for who acts in the registry's rows, or None when it can."""
    text = name.strip()
    if not text:
        return "is blank"
    if len(text) > MAX_NAME:
        return f"is over the {MAX_NAME} characters the registry records of who acts"
    if "\x00" in text:
        return "holds a NUL character"
    shown = display_text_problem(text)  # shown to the publisher and in the audit: one line of display text
    if shown is not None:
        return f"holds {shown.partition(' is not allowed')[0]}, which no name shown to a publisher may hold"
    return None


def person_key(name: str) -> str:
    """Who ``name`` is, for four eyes: compatibility-normalised, case-folded, whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


def high_sensitivity(scopes: Iterable[str]) -> frozenset[str]:
    """The scopes among ``scopes`` whose sensitivity is ``HIGH`` (unknown names are ignored)."""
    return frozenset(s for s in scopes if s in SCOPES and SCOPES[s].sensitivity is Sensitivity.HIGH)


def approvals_needed(requested: Iterable[str]) -> int:
    """Two distinct approvers when any requested scope is high-sensitivity, otherwise one."""
    return 2 if high_sensitivity(requested) else 1


def check_grant(
    grant: Iterable[str] | None, *, required: frozenset[str], optional: frozenset[str]
) -> frozenset[str]:
    """The scopes an approval grants: all requested when ``grant`` is None, else ``grant`` if it is legal."""
    if grant is None:
        return required | optional
    granted = frozenset(grant)
    extra = granted - required - optional
    if extra:
        raise InvalidInput(
            "grant", f"not requested by the release, cannot be granted: {', '.join(sorted(extra))}"
        )
    dropped = required - granted
    if dropped:
        raise InvalidInput(
            "grant",
            f"required scopes cannot be withheld: {', '.join(sorted(dropped))}; reject the release instead",
        )
    return granted


def check_checklist(checklist: Mapping[str, bool], *, approving: bool) -> dict[str, bool]:
    """Validate checklist answers: known keys only; approving needs every item confirmed."""
    unknown = sorted(set(checklist) - set(REVIEW_CHECKLIST))
    if unknown:
        raise InvalidInput(f"checklist.{unknown[0]}", f"unknown item; known: {', '.join(REVIEW_CHECKLIST)}")
    if approving:
        missing = [k for k in REVIEW_CHECKLIST if checklist.get(k) is not True]
        if missing:
            raise InvalidInput(f"checklist.{missing[0]}", "approval needs every checklist item confirmed")
    return {k: bool(v) for k, v in checklist.items()}


_ONE_LINE = "; a reason is one line: give several points as several reasons"


def check_reasons(reasons: Iterable[str], *, required: bool, what: str = "a reason") -> list[str]:
    """Strip reasons, refuse blank ones, overlong ones (named ``what`` in the refusal, e.g. "a
    rejection reason") and ones display text refuses; rejecting needs at least one.

    A reason is shown to the publisher and in the audit, and listed on one line by the CLI and in logs:
    one line of display text, so a bidi control, a control character or a line break is refused (a
    line feed too: several points are several reasons)."""
    cleaned: list[str] = []
    for i, reason in enumerate(reasons):
        text = reason.strip()
        if not text:
            raise InvalidInput(f"reasons.{i}", f"{what} must not be blank")
        if len(text) > 2000:
            raise InvalidInput(f"reasons.{i}", f"{what} must be at most 2000 characters, not {len(text)}")
        problem = display_text_problem(text)
        if problem is not None:
            if problem.startswith("U+000A "):  # the display text hint names summaries: say a reason's
                problem = problem.partition("; ")[0] + _ONE_LINE
            raise InvalidInput(f"reasons.{i}", problem)
        cleaned.append(text)
    if required and not cleaned:
        raise InvalidInput("reasons", "a rejection needs at least one reason the publisher can act on")
    return cleaned
