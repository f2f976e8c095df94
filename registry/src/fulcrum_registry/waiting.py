"""What waits for one more reviewer, as conditions a listing puts in its own paged query.

Three things wait for a second person: a release in review with one approval of the two it needs, a
suspended release one reviewer agreed to resume, and a suspended publisher one reviewer agreed to
reinstate. Each is read from the rows the four-eyes checks read: the reviews, and the audit rows
``undo.votes_on`` reads (an agreement counts when its switch was not pulled again after it). So the
filter lists exactly what the next person's decision completes, and a page is never cut short.

A release of a suspended publisher is not listed for its second approval: approving it is refused
until the publisher is reinstated, and it comes back to the list then.

Given a reviewer, only what that person may complete: not a release they submitted (for a publisher:
any release of its), not a switch they pulled, not one they approved or agreed to lift already.
People are compared by ``person_key``, which SQL cannot compute, so ``spellings`` first reads the
names the rows hold that are the reviewer's, and the conditions compare with those.
"""

from __future__ import annotations

from collections.abc import Set

from sqlalchemy import ColumnElement, Select, String, and_, cast, exists, literal, or_, select, union
from sqlalchemy.orm import Session, aliased

from fulcrum_registry.models import AuditEvent, Publisher, Release, Review
from fulcrum_registry.undo import PUBLISHER_SWITCH, RELEASE_SWITCH, Switch
from fulcrum_registry.workflow import ReleaseState, person_key

__all__ = ["spellings", "waiting_publishers", "waiting_releases"]


def spellings(session: Session, reviewer: str) -> frozenset[str]:
    """``reviewer`` and every other spelling of that person (``person_key``) among the registry's
    submitters, reviewers and kill-switch actors; one query."""
    key = person_key(reviewer)
    actions = [a for s in (RELEASE_SWITCH, PUBLISHER_SWITCH) for a in (s.pulled, s.agreed)]
    names = union(
        select(Release.submitted_by),
        select(Review.reviewer),
        select(AuditEvent.actor).where(AuditEvent.action.in_(actions)),
    )
    found = session.execute(names).scalars()
    return frozenset({reviewer, *(name for name in found if person_key(name) == key)})


def _subjects(switch: Switch, action: str, who: Set[str] | None = None) -> Select[tuple[str]]:
    """The subjects whose ``action`` row (by one of ``who`` when given) is not followed by a pull of
    ``switch``: agreements since the last pull, or the last pull itself. Uncorrelated, so the database
    reads the few such rows once for the whole listing instead of once per listed row."""
    row, later = aliased(AuditEvent), aliased(AuditEvent)
    pulled_later = exists().where(
        later.subject == row.subject, later.action == switch.pulled, later.seq > row.seq
    )
    found = select(row.subject).where(row.action == action, ~pulled_later)
    return found.where(row.actor.in_(who)) if who is not None else found


def _agreed(switch: Switch, who: Set[str] | None = None) -> Select[tuple[str]]:
    """Subjects someone (one of ``who`` when given) agreed to lift ``switch`` on since its last pull."""
    return _subjects(switch, switch.agreed, who)


def _pulled_by(switch: Switch, who: Set[str]) -> Select[tuple[str]]:
    """Subjects whose ``switch`` one of ``who`` pulled last."""
    return _subjects(switch, switch.pulled, who)


def waiting_releases(who: Set[str] | None = None) -> ColumnElement[bool]:
    """Releases one more approval or agreement to resume completes; with ``who`` (a reviewer's
    ``spellings``), only those that reviewer may complete."""
    subject = literal("release:", String) + cast(Release.id, String)
    # In review with an approval means a second is needed: a release needing one is approved by it.
    approval = and_(
        Release.state == ReleaseState.IN_REVIEW.value,
        Release.id.in_(select(Review.release_id).where(Review.decision == "approve")),
        Release.publisher_id.in_(select(Publisher.id).where(Publisher.suspended.is_(False))),
    )
    # Likewise a release needing one person to resume it is resumed by the first agreement.
    resume = and_(Release.state == ReleaseState.SUSPENDED.value, subject.in_(_agreed(RELEASE_SWITCH)))
    if who is None:
        return or_(approval, resume)
    return and_(
        Release.submitted_by.not_in(who),
        or_(
            and_(approval, Release.id.not_in(select(Review.release_id).where(Review.reviewer.in_(who)))),
            and_(
                resume,
                subject.not_in(_agreed(RELEASE_SWITCH, who)),
                subject.not_in(_pulled_by(RELEASE_SWITCH, who)),
            ),
        ),
    )


def waiting_publishers(who: Set[str] | None = None) -> ColumnElement[bool]:
    """Suspended publishers one more agreement reinstates; with ``who`` (a reviewer's ``spellings``),
    only those that reviewer may complete."""
    subject = literal("publisher:", String) + Publisher.id
    waiting = and_(Publisher.suspended.is_(True), subject.in_(_agreed(PUBLISHER_SWITCH)))
    if who is None:
        return waiting
    return and_(
        waiting,
        Publisher.id.not_in(select(Release.publisher_id).where(Release.submitted_by.in_(who))),
        subject.not_in(_agreed(PUBLISHER_SWITCH, who)),
        subject.not_in(_pulled_by(PUBLISHER_SWITCH, who)),
    )
