"""Turn registry rows into the read structs of ``schemas``, loading related rows in batches."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import msgspec
from fulcrum_sdk.manifest import Manifest
from sqlalchemy import select
from sqlalchemy.orm import Session

from fulcrum_registry.checks import CheckResult
from fulcrum_registry.models import Publisher, Release, Review, ScopeGrant
from fulcrum_registry.schemas import ArtifactRef, PublisherRead, ReleaseRead, ReviewRead, ScopeRequest
from fulcrum_registry.workflow import ReleaseState, approvals_needed

__all__ = ["load_manifest", "publisher_read", "release_reads"]


def publisher_read(row: Publisher) -> PublisherRead:
    """A publisher row as its read struct."""
    return PublisherRead(
        id=row.id,
        name=row.name,
        name_en=row.name_en,
        kind=row.kind,
        verified=row.verified,
        contact=row.contact,
        created_at=row.created_at,
        suspended=row.suspended,
    )


def load_manifest(row: Release) -> Manifest | None:
    """The manifest snapshot stored with a release."""
    return msgspec.convert(row.manifest, Manifest) if row.manifest is not None else None


def _review_read(row: Review) -> ReviewRead:
    return ReviewRead(
        reviewer=row.reviewer,
        decision=row.decision,  # type: ignore[arg-type]  # the table's CHECK constraint holds it to the two
        reasons=tuple(row.reasons),
        checklist=dict(row.checklist),
        granted=tuple(row.granted) if row.granted is not None else None,
        at=row.at,
    )


def release_reads(session: Session, rows: Sequence[Release]) -> list[ReleaseRead]:
    """Read structs for ``rows``, with their reviews and grants loaded in two queries."""
    ids = [r.id for r in rows]
    reviews: dict[int, list[Review]] = defaultdict(list)
    grants: dict[int, list[ScopeGrant]] = defaultdict(list)
    if ids:
        for review in session.scalars(select(Review).where(Review.release_id.in_(ids)).order_by(Review.id)):
            reviews[review.release_id].append(review)
        for grant in session.scalars(select(ScopeGrant).where(ScopeGrant.release_id.in_(ids))):
            grants[grant.release_id].append(grant)
    out = []
    for row in rows:
        manifest = load_manifest(row)
        checks = msgspec.convert(row.checks, tuple[CheckResult, ...])
        decided = row.state in (ReleaseState.APPROVED, ReleaseState.SUSPENDED, ReleaseState.RETIRED)
        requested = manifest.scopes if manifest else None
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
                requested=ScopeRequest(
                    required=tuple(sorted(requested.required)) if requested else (),
                    optional=tuple(sorted(requested.optional)) if requested else (),
                ),
                granted_scopes=tuple(sorted(g.scope for g in grants[row.id] if g.granted))
                if decided
                else None,
                approvals_needed=approvals_needed(requested.all) if requested else 1,
                approvals=tuple(r.reviewer for r in reviews[row.id] if r.decision == "approve"),
                reviews=tuple(_review_read(r) for r in reviews[row.id]),
                manifest=manifest,
            )
        )
    return out
