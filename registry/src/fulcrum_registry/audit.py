"""The hash-chained audit log: append an event, read events, and verify the chain end to end.

Each row's ``hash`` is SHA-256 over the canonical JSON of its fields (``seq``, ``at``, ``actor``,
``action``, ``subject``, ``payload``; keys sorted, no whitespace, UTF-8) followed by the previous
row's hash; the first row's ``prev_hash`` is 64 zeros. A changed row no longer matches its hash; a
deleted row leaves a gap in ``seq`` and a ``prev_hash`` that points at nothing; reordering rows
breaks both. A chain only proves what happened *before* its newest row: whoever can rewrite the
database can also drop the tail, so publish ``head()`` somewhere else to anchor it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fulcrum_registry.models.audit import AuditEvent

__all__ = [
    "GENESIS",
    "AuditEntry",
    "BrokenLink",
    "append",
    "compute_hash",
    "events",
    "head",
    "last_seq",
    "verify",
]

GENESIS = "0" * 64


class BrokenLink(msgspec.Struct, frozen=True):
    """The first row at which the chain does not hold, and why."""

    seq: int
    reason: str


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One audit event as read by API clients."""

    seq: int
    at: datetime
    actor: str
    action: str
    subject: str
    payload: dict[str, Any]
    prev_hash: str
    hash: str


def _stamp(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("audit timestamps must be timezone-aware")
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def compute_hash(
    *,
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    subject: str,
    payload: Mapping[str, Any],
    prev_hash: str,
) -> str:
    """The hash a row with these fields must carry."""
    body = {
        "seq": seq,
        "at": _stamp(at),
        "actor": actor,
        "action": action,
        "subject": subject,
        "payload": payload,
    }
    return hashlib.sha256(msgspec.json.encode(body, order="sorted") + prev_hash.encode("ascii")).hexdigest()


def _tail(session: Session) -> tuple[int, str]:
    row = session.execute(
        select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)
    ).first()
    return (row[0], row[1]) if row else (0, GENESIS)


def append(
    session: Session, *, at: datetime, actor: str, action: str, subject: str, payload: Mapping[str, Any]
) -> AuditEvent:
    """Add the next event to the chain and flush it.

    Two writers that read the same tail both try to insert the same ``seq``; the primary key refuses
    the second, whose unit of work is then retried (see ``fulcrum_registry._db``). So the audit log
    also serialises every registry write, which is what keeps read-then-write checks honest.
    """
    data = msgspec.json.decode(msgspec.json.encode(payload))  # plain JSON values only, as stored
    seq, prev = _tail(session)
    fields = {"seq": seq + 1, "at": at, "actor": actor, "action": action, "subject": subject, "payload": data}
    event = AuditEvent(**fields, prev_hash=prev, hash=compute_hash(**fields, prev_hash=prev))
    session.add(event)
    session.flush()
    return event


def last_seq(session: Session) -> int:
    """The newest ``seq`` (0 when empty): one index lookup, cheap enough to poll."""
    return int(session.scalar(select(func.max(AuditEvent.seq))) or 0)


def head(session: Session) -> tuple[int, str]:
    """The newest ``(seq, hash)``, to be recorded outside the database as an anchor."""
    return _tail(session)


def _entry(row: AuditEvent) -> AuditEntry:
    return AuditEntry(
        seq=row.seq,
        at=row.at,
        actor=row.actor,
        action=row.action,
        subject=row.subject,
        payload=dict(row.payload),
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


def events(
    session: Session, *, after: int = 0, limit: int = 100, subject: str | None = None
) -> list[AuditEntry]:
    """Events with ``seq > after`` in order, optionally for one subject (``release:12``)."""
    query = select(AuditEvent).where(AuditEvent.seq > after).order_by(AuditEvent.seq).limit(limit)
    if subject is not None:
        query = query.where(AuditEvent.subject == subject)
    return [_entry(row) for row in session.scalars(query)]


def verify(session: Session, *, batch: int = 500) -> BrokenLink | None:
    """Walk the chain from the first row and return the first broken link, or None if it holds."""
    expected_seq, prev = 1, GENESIS
    rows = session.execute(select(AuditEvent).order_by(AuditEvent.seq).execution_options(yield_per=batch))
    for row in rows.scalars():
        if row.seq != expected_seq:
            what = "missing" if row.seq > expected_seq else "duplicated or out of order"
            return BrokenLink(row.seq, f"expected seq {expected_seq}: rows {what}")
        if row.prev_hash != prev:
            return BrokenLink(
                row.seq, "prev_hash does not match the previous row's hash (a row was removed or reordered)"
            )
        try:
            recomputed = compute_hash(
                seq=row.seq,
                at=row.at,
                actor=row.actor,
                action=row.action,
                subject=row.subject,
                payload=row.payload,
                prev_hash=row.prev_hash,
            )
        except (TypeError, ValueError, msgspec.EncodeError) as exc:
            return BrokenLink(row.seq, f"row cannot be hashed: {exc}")
        if recomputed != row.hash:
            return BrokenLink(row.seq, "hash does not match the row's content (the row was changed)")
        expected_seq, prev = row.seq + 1, row.hash
    return None
