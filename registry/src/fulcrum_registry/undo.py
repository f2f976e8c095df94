"""Who may undo a kill switch: resuming a release or reinstating a publisher puts code back in service.

A kill switch is one person's call, so it can be pulled at once. Undoing it is a decision like an
approval and gets the same four eyes, read from the audit log (the record of who did what):

* **Not the people it protects against.** A release's submitter never resumes it; a publisher's own
  submitters never reinstate it.
* **Not the one who pulled it.** Whoever judged the code unsafe does not alone judge it safe again:
  stopping and restarting are two people's calls, so a mistaken or hasty switch is undone by a colleague.
* **Two people for high-sensitivity scopes.** When what comes back requests a ``Sensitivity.HIGH``
  scope, two distinct people must agree, as two approvers had to; the first agreement is audited
  (``<undo>_agreed``) and the switch stays on until the second.

Agreements count only after the latest pull of the switch, so a second suspension starts afresh.
The same reading (``votes_on``) shows a half-agreed undo on the release or publisher
(``pending_resume``, ``pending_reinstatement``), and ``waiting`` asks it of the database for a whole
listing, so the second reviewer can find what waits for them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec
from sqlalchemy import select
from sqlalchemy.orm import Session

from fulcrum_registry.errors import FourEyesViolation
from fulcrum_registry.models.audit import AuditEvent
from fulcrum_registry.schemas import PendingUndo, UndoAgreement
from fulcrum_registry.workflow import Action, person_key

__all__ = [
    "PUBLISHER_SWITCH",
    "RELEASE_SWITCH",
    "Switch",
    "Undo",
    "Votes",
    "agreed_so_far",
    "check_undoer",
    "pending",
    "reinstatement_undo",
    "resume_undo",
    "votes_on",
]


class Switch(msgspec.Struct, frozen=True, kw_only=True):
    """A kind of kill switch: the audit action that pulls it and the one agreeing to lift it."""

    pulled: str  # "release.suspend", "publisher.suspended"
    agreed: str  # "release.resume_agreed", "publisher.reinstatement_agreed"


RELEASE_SWITCH = Switch(
    pulled=f"release.{Action.SUSPEND.value}",  # what the service's move of a release records
    agreed="release.resume_agreed",
)
PUBLISHER_SWITCH = Switch(pulled="publisher.suspended", agreed="publisher.reinstatement_agreed")


class Undo(msgspec.Struct, frozen=True, kw_only=True):
    """One kill switch on ``subject``: the audit action that pulled it, and the one agreeing to undo it."""

    subject: str  # "release:12", "publisher:pension-dept"
    pulled: str  # "release.suspend", "publisher.suspended"
    agreed: str  # "release.resume_agreed", "publisher.reinstatement_agreed"
    doing: str  # "resume release 12", in refusals


def resume_undo(release_id: int) -> Undo:
    """Resuming a suspended release."""
    return Undo(
        subject=f"release:{release_id}",
        pulled=RELEASE_SWITCH.pulled,
        agreed=RELEASE_SWITCH.agreed,
        doing=f"resume release {release_id}",
    )


def reinstatement_undo(publisher_id: str) -> Undo:
    """Reinstating a suspended publisher."""
    return Undo(
        subject=f"publisher:{publisher_id}",
        pulled=PUBLISHER_SWITCH.pulled,
        agreed=PUBLISHER_SWITCH.agreed,
        doing=f"reinstate publisher {publisher_id!r}",
    )


class Votes(msgspec.Struct, frozen=True):
    """Who pulled the switch last (None for rows older than the audit log) and who agreed since."""

    puller: str | None
    agreements: tuple[UndoAgreement, ...]  # oldest first

    @property
    def agreed(self) -> tuple[str, ...]:
        """The people who agreed, oldest first."""
        return tuple(a.by for a in self.agreements)


def votes_on(session: Session, undos: Sequence[Undo]) -> dict[str, Votes]:
    """Subject → the latest pull of each of ``undos``' switches and the agreements recorded after it,
    in one query (the review queue reads many releases at once)."""
    by_subject = {u.subject: u for u in undos}
    if not by_subject:
        return {}
    actions = {a for u in undos for a in (u.pulled, u.agreed)}
    rows = session.execute(
        select(AuditEvent.subject, AuditEvent.actor, AuditEvent.action, AuditEvent.at, AuditEvent.payload)
        .where(AuditEvent.subject.in_(by_subject), AuditEvent.action.in_(actions))
        .order_by(AuditEvent.seq.desc())
    )
    agreed: dict[str, list[UndoAgreement]] = {s: [] for s in by_subject}
    puller: dict[str, str] = {}
    for subject, actor, action, at, payload in rows:
        undo = by_subject[subject]
        if subject in puller:  # older than the latest pull: counts for nothing
            continue
        if action == undo.pulled:
            puller[subject] = actor
        elif action == undo.agreed:
            reason = (payload or {}).get("reason")
            agreed[subject].append(
                UndoAgreement(by=actor, at=at, reason=reason if isinstance(reason, str) else None)
            )
    return {s: Votes(puller.get(s), tuple(reversed(agreed[s]))) for s in by_subject}


def agreed_so_far(session: Session, undo: Undo) -> Votes:
    """The latest pull of ``undo``'s switch and the agreements to undo it recorded after it."""
    return votes_on(session, [undo])[undo.subject]


def pending(votes: Votes, needed: int) -> PendingUndo | None:
    """What a switch that is still on waits for, or None when nobody agreed to lift it yet.

    Call it only while the switch is on: once a release moves on (resumed, retired) or a publisher
    is reinstated, nothing is pending whatever the audit log holds.
    """
    if not votes.agreements:
        return None
    return PendingUndo(agreed=votes.agreements, needed=needed, suspended_by=votes.puller)


def check_undoer(undo: Undo, votes: Votes, actor: str, barred: Mapping[str, str]) -> None:
    """Refuse ``actor`` (``FourEyesViolation``) when barred, the puller, or already agreed.

    ``barred`` maps a person to why (``"submitted it"``); people are compared by ``person_key``.
    """
    key = person_key(actor)
    for person, why in barred.items():
        if person_key(person) == key:
            raise FourEyesViolation(f"{actor!r} {why} and cannot {undo.doing}; another reviewer must")
    if votes.puller is not None and person_key(votes.puller) == key:
        raise FourEyesViolation(
            f"{actor!r} pulled the kill switch and cannot also {undo.doing}; another reviewer must"
        )
    if any(person_key(p) == key for p in votes.agreed):
        raise FourEyesViolation(f"{actor!r} already agreed to {undo.doing}; a second reviewer must")
