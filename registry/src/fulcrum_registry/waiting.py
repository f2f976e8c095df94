"""What waits for one more reviewer, as conditions a listing puts in its own paged query.

Three things wait for a second person: a release in review with one approval of the two it needs, a
suspended release one reviewer agreed to resume, and a suspended publisher one reviewer agreed to
reinstate. Each is read from the rows the four-eyes checks read: the reviews, and the audit rows
``undo.votes_on`` reads (an agreement counts when its switch was not pulled again after it). So the
filter lists exactly what the next person's decision completes, and a page is never cut short.

The conditions are correlated with the listed row and go through the indexes on a review's release and
an audit row's subject: the database reads the few rows of what is in review or suspended, not every
review and agreement the registry ever recorded, so a listing costs the same however long the log.

A release of a suspended publisher is not listed for its second approval: approving it is refused
until the publisher is reinstated, and it comes back to the list then.

Given a reviewer, only what that person may complete: not a release they submitted (for a publisher:
any release of its), not a switch they pulled, not one they approved or agreed to lift already.
People are compared by ``person_key``, which SQL cannot compute, so ``release_spellings`` and
``publisher_spellings`` first read the names that are the reviewer's, and the conditions compare with
those. Only the names the conditions can meet are read: those on the rows of what waits for anyone
(its submitters, reviewers and switch rows), a few, where every name in the audit log read more with
every row the log grew by. A name on no such row changes no comparison, so the listing is the same.
"""

from __future__ import annotations

from collections.abc import Set

from sqlalchemy import ColumnElement, CompoundSelect, String, and_, cast, exists, literal, or_, select, union
from sqlalchemy.orm import Session, aliased

from fulcrum_registry.models import AuditEvent, Publisher, Release, Review
from fulcrum_registry.undo import PUBLISHER_SWITCH, RELEASE_SWITCH, Switch
from fulcrum_registry.workflow import ReleaseState, person_key

__all__ = ["publisher_spellings", "release_spellings", "waiting_publishers", "waiting_releases"]


def _release_subject() -> ColumnElement[str]:
    """The listed release's audit subject, ``release:<id>``."""
    return literal("release:", String) + cast(Release.id, String)


def _publisher_subject() -> ColumnElement[str]:
    """The listed publisher's audit subject, ``publisher:<id>``."""
    return literal("publisher:", String) + Publisher.id


def _spellings(session: Session, reviewer: str, names: CompoundSelect) -> frozenset[str]:
    """``reviewer`` and every other spelling of that person (``person_key``) among ``names``; one query."""
    key = person_key(reviewer)
    found = session.execute(names).scalars()
    return frozenset({reviewer, *(name for name in found if person_key(name) == key)})


def release_spellings(session: Session, reviewer: str) -> frozenset[str]:
    """The ``who`` of ``waiting_releases`` for ``reviewer``: their spellings among the names of the
    releases waiting for anyone: submitters, reviewers, and who pulled or agreed to lift their switch."""
    waiting = select(Release.id).where(waiting_releases())
    subjects = select(_release_subject()).where(waiting_releases())
    actions = (RELEASE_SWITCH.pulled, RELEASE_SWITCH.agreed)
    names = union(
        select(Release.submitted_by).where(waiting_releases()),
        select(Review.reviewer).where(Review.release_id.in_(waiting)),
        select(AuditEvent.actor).where(AuditEvent.subject.in_(subjects), AuditEvent.action.in_(actions)),
    )
    return _spellings(session, reviewer, names)


def publisher_spellings(session: Session, reviewer: str) -> frozenset[str]:
    """The ``who`` of ``waiting_publishers`` for ``reviewer``: their spellings among the names of the
    publishers waiting for anyone: their releases' submitters, and who pulled or agreed to lift their
    switch."""
    waiting = select(Publisher.id).where(waiting_publishers())
    subjects = select(_publisher_subject()).where(waiting_publishers())
    actions = (PUBLISHER_SWITCH.pulled, PUBLISHER_SWITCH.agreed)
    names = union(
        select(Release.submitted_by).where(Release.publisher_id.in_(waiting)),
        select(AuditEvent.actor).where(AuditEvent.subject.in_(subjects), AuditEvent.action.in_(actions)),
    )
    return _spellings(session, reviewer, names)


def _standing(
    switch: Switch, action: str, subject: ColumnElement[str], who: Set[str] | None = None
) -> ColumnElement[bool]:
    """``subject`` has an ``action`` row (by one of ``who`` when given) not followed by a pull of
    ``switch``: an agreement since the last pull, or the last pull itself. Correlated with the listed
    row, so the database reads that row's few audit rows through the subject index."""
    row, later = aliased(AuditEvent), aliased(AuditEvent)
    pulled_later = exists().where(
        later.subject == row.subject, later.action == switch.pulled, later.seq > row.seq
    )
    found = [row.subject == subject, row.action == action, ~pulled_later]
    if who is not None:
        found.append(row.actor.in_(who))
    return exists().where(*found)


def _agreed(switch: Switch, subject: ColumnElement[str], who: Set[str] | None = None) -> ColumnElement[bool]:
    """Someone (one of ``who`` when given) agreed to lift ``switch`` on ``subject`` since its last pull."""
    return _standing(switch, switch.agreed, subject, who)


def _pulled_by(switch: Switch, subject: ColumnElement[str], who: Set[str]) -> ColumnElement[bool]:
    """One of ``who`` pulled ``subject``'s ``switch`` last."""
    return _standing(switch, switch.pulled, subject, who)


def waiting_releases(who: Set[str] | None = None) -> ColumnElement[bool]:
    """Releases one more approval or agreement to resume completes; with ``who`` (a reviewer's
    ``release_spellings``), only those that reviewer may complete."""
    subject = _release_subject()
    # In review with an approval means a second is needed: a release needing one is approved by it.
    approval = and_(
        Release.state == ReleaseState.IN_REVIEW.value,
        exists().where(Review.release_id == Release.id, Review.decision == "approve"),
        Release.publisher_id.in_(select(Publisher.id).where(Publisher.suspended.is_(False))),
    )
    # Likewise a release needing one person to resume it is resumed by the first agreement.
    resume = and_(Release.state == ReleaseState.SUSPENDED.value, _agreed(RELEASE_SWITCH, subject))
    if who is None:
        return or_(approval, resume)
    return and_(
        Release.submitted_by.not_in(who),
        or_(
            and_(approval, ~exists().where(Review.release_id == Release.id, Review.reviewer.in_(who))),
            and_(
                resume,
                ~_agreed(RELEASE_SWITCH, subject, who),
                ~_pulled_by(RELEASE_SWITCH, subject, who),
            ),
        ),
    )


def waiting_publishers(who: Set[str] | None = None) -> ColumnElement[bool]:
    """Suspended publishers one more agreement reinstates; with ``who`` (a reviewer's
    ``publisher_spellings``), only those that reviewer may complete."""
    subject = _publisher_subject()
    waiting = and_(Publisher.suspended.is_(True), _agreed(PUBLISHER_SWITCH, subject))
    if who is None:
        return waiting
    return and_(
        waiting,
        ~exists().where(Release.publisher_id == Publisher.id, Release.submitted_by.in_(who)),
        ~_agreed(PUBLISHER_SWITCH, subject, who),
        ~_pulled_by(PUBLISHER_SWITCH, subject, who),
    )
