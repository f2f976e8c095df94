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
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec
from sqlalchemy import select
from sqlalchemy.orm import Session

from fulcrum_registry.errors import FourEyesViolation
from fulcrum_registry.models.audit import AuditEvent
from fulcrum_registry.workflow import person_key

__all__ = ["Undo", "Votes", "agreed_so_far", "check_undoer"]


class Undo(msgspec.Struct, frozen=True, kw_only=True):
    """One kill switch on ``subject``: the audit action that pulled it, and the one agreeing to undo it."""

    subject: str  # "release:12", "publisher:pension-dept"
    pulled: str  # "release.suspend", "publisher.suspended"
    agreed: str  # "release.resume_agreed", "publisher.reinstatement_agreed"
    doing: str  # "resume release 12", in refusals


class Votes(msgspec.Struct, frozen=True):
    """Who pulled the switch last (None for rows older than the audit log) and who agreed since."""

    puller: str | None
    agreed: tuple[str, ...]


def agreed_so_far(session: Session, undo: Undo) -> Votes:
    """The latest pull of ``undo``'s switch and the agreements to undo it recorded after it."""
    rows = session.execute(
        select(AuditEvent.actor, AuditEvent.action)
        .where(AuditEvent.subject == undo.subject, AuditEvent.action.in_((undo.pulled, undo.agreed)))
        .order_by(AuditEvent.seq.desc())
    )
    agreed: list[str] = []
    for actor, action in rows:
        if action == undo.pulled:
            return Votes(actor, tuple(reversed(agreed)))
        agreed.append(actor)
    return Votes(None, tuple(reversed(agreed)))


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
