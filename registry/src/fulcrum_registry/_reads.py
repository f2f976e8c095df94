"""Turn registry rows into the read structs of ``schemas``, loading related rows in batches."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

import msgspec
from fulcrum_sdk.manifest import Manifest
from sqlalchemy import select
from sqlalchemy.orm import Session

from fulcrum_registry.checks import CheckResult, stored_manifest
from fulcrum_registry.models import Publisher, Release, Review, ScopeGrant
from fulcrum_registry.schemas import ArtifactRef, PublisherRead, ReleaseRead, ReviewRead, ScopeRequest
from fulcrum_registry.undo import pending, reinstatement_undo, resume_undo, votes_on
from fulcrum_registry.workflow import ReleaseState, approvals_needed

__all__ = [
    "load_manifest",
    "publisher_read",
    "publisher_reads",
    "reinstatement_needed",
    "release_reads",
    "requested_scopes",
]


def load_manifest(row: Release) -> Manifest | None:
    """The manifest snapshot stored with a release; None when there is none or today's rules cannot
    read it (``checks.stored_manifest``)."""
    return stored_manifest(row.manifest)[0]


def requested_scopes(row: Release) -> frozenset[str]:
    """Every scope ``row``'s manifest requests (none when it has no manifest today's rules read: such a
    release never runs, so its requests decide nothing)."""
    manifest = load_manifest(row)
    return frozenset(manifest.scopes.all) if manifest is not None else frozenset()


def reinstatement_needed(releases: Iterable[Release]) -> int:
    """How many must agree to reinstate a publisher with ``releases``: two when one that would run
    again (approved, not suspended itself) requests a high-sensitivity scope, else one."""
    running = (r for r in releases if r.state == ReleaseState.APPROVED.value)
    return max((approvals_needed(requested_scopes(r)) for r in running), default=1)


def publisher_reads(session: Session, rows: Sequence[Publisher]) -> list[PublisherRead]:
    """Read structs for ``rows``, with a suspended one's pending reinstatement (two more queries)."""
    suspended = [r.id for r in rows if r.suspended]
    releases: dict[str, list[Release]] = defaultdict(list)
    if suspended:
        for release in session.scalars(select(Release).where(Release.publisher_id.in_(suspended))):
            releases[release.publisher_id].append(release)
    votes = votes_on(session, [reinstatement_undo(p) for p in suspended])
    return [
        PublisherRead(
            id=row.id,
            name=row.name,
            name_en=row.name_en,
            kind=row.kind,
            verified=row.verified,
            contact=row.contact,
            created_at=row.created_at,
            suspended=row.suspended,
            pending_reinstatement=pending(
                votes[reinstatement_undo(row.id).subject], reinstatement_needed(releases[row.id])
            )
            if row.suspended
            else None,
        )
        for row in rows
    ]


def publisher_read(session: Session, row: Publisher) -> PublisherRead:
    """A publisher row as its read struct."""
    return publisher_reads(session, [row])[0]


def _review_read(row: Review) -> ReviewRead:
    return ReviewRead(
        reviewer=row.reviewer,
        decision=row.decision,  # type: ignore[arg-type]  # the table's CHECK constraint holds it to the two
        reasons=tuple(row.reasons),
        checklist=dict(row.checklist),
        granted=tuple(row.granted) if row.granted is not None else None,
        at=row.at,
    )


def _requests(manifest: Manifest | None, grants: Iterable[ScopeGrant]) -> ScopeRequest:
    """The scopes a release asks for: its manifest's, or when today's rules refuse that manifest, the
    grant rows recorded when it passed its checks (what it asked for stays on record)."""
    if manifest is not None:
        return ScopeRequest(
            required=tuple(sorted(manifest.scopes.required)), optional=tuple(sorted(manifest.scopes.optional))
        )
    asked = sorted((g.requirement, g.scope) for g in grants)
    return ScopeRequest(
        required=tuple(s for r, s in asked if r == "required"),
        optional=tuple(s for r, s in asked if r == "optional"),
    )


def release_reads(session: Session, rows: Sequence[Release]) -> list[ReleaseRead]:
    """Read structs for ``rows``, with their reviews, grants, pending resumes and suspended publishers
    loaded in four queries."""
    ids = [r.id for r in rows]
    reviews: dict[int, list[Review]] = defaultdict(list)
    grants: dict[int, list[ScopeGrant]] = defaultdict(list)
    stopped: set[str] = set()
    if ids:
        publishers = {r.publisher_id for r in rows}
        off = select(Publisher.id).where(Publisher.id.in_(publishers), Publisher.suspended.is_(True))
        stopped.update(session.scalars(off))
        for review in session.scalars(select(Review).where(Review.release_id.in_(ids)).order_by(Review.id)):
            reviews[review.release_id].append(review)
        for grant in session.scalars(select(ScopeGrant).where(ScopeGrant.release_id.in_(ids))):
            grants[grant.release_id].append(grant)
    suspended = ReleaseState.SUSPENDED.value
    votes = votes_on(session, [resume_undo(r.id) for r in rows if r.state == suspended])
    out = []
    for row in rows:
        manifest, problem = stored_manifest(row.manifest)
        checks = msgspec.convert(row.checks, tuple[CheckResult, ...])
        decided = row.state in (ReleaseState.APPROVED, ReleaseState.SUSPENDED, ReleaseState.RETIRED)
        requested = _requests(manifest, grants[row.id])
        needed = approvals_needed({*requested.required, *requested.optional})  # as many must agree to resume
        out.append(
            ReleaseRead(
                id=row.id,
                plugin_id=row.plugin_id,
                publisher_id=row.publisher_id,
                version=row.version,
                state=row.state,  # type: ignore[arg-type]
                artifact=ArtifactRef(
                    sha256=row.artifact_sha256, size=row.artifact_size, filename=row.artifact_filename
                ),
                submitted_by=row.submitted_by,
                submitted_at=row.submitted_at,
                updated_at=row.updated_at,
                checks=checks,
                failed_checks=tuple(c.id for c in checks if c.status == "failed"),
                requested=requested,
                granted_scopes=tuple(sorted(g.scope for g in grants[row.id] if g.granted))
                if decided
                else None,
                approvals_needed=needed,
                approvals=tuple(r.reviewer for r in reviews[row.id] if r.decision == "approve"),
                reviews=tuple(_review_read(r) for r in reviews[row.id]),
                manifest=manifest,
                pending_resume=pending(votes[resume_undo(row.id).subject], needed)
                if row.state == suspended
                else None,
                publisher_suspended=row.publisher_id in stopped,
                manifest_problem=problem,
            )
        )
    return out
