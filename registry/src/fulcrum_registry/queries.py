"""Read-side queries the service runs inside its sessions: releases, the review diff, the live policy."""

from __future__ import annotations

from fulcrum_sdk.manifest import Manifest
from packaging.version import Version
from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session

from fulcrum_registry._reads import load_manifest, publisher_reads, release_reads
from fulcrum_registry.checks import stored_manifest
from fulcrum_registry.diff import diff_manifests
from fulcrum_registry.errors import InvalidInput, NotFound
from fulcrum_registry.models import Publisher, Release, ScopeGrant
from fulcrum_registry.schemas import (
    ActiveRelease,
    LeftOut,
    Page,
    PublisherQuery,
    PublisherRead,
    ReleaseDiff,
    ReleaseQuery,
    ReleaseRead,
)
from fulcrum_registry.waiting import (
    publisher_spellings,
    release_spellings,
    waiting_publishers,
    waiting_releases,
)
from fulcrum_registry.workflow import ReleaseState

__all__ = [
    "EVER_APPROVED",
    "active_policy",
    "list_publishers",
    "list_releases",
    "release_diff",
    "release_row",
]

EVER_APPROVED = (ReleaseState.APPROVED.value, ReleaseState.SUSPENDED.value, ReleaseState.RETIRED.value)
"""States only an approved release can reach: the candidates for a diff's baseline."""


def release_row(session: Session, release_id: int, *, lock: bool = False) -> Release:
    """The release row (``FOR UPDATE`` when ``lock``), or ``NotFound``."""
    row = session.get(Release, release_id, with_for_update=lock)
    if row is None:
        raise NotFound("release", release_id)
    return row


def list_releases(session: Session, q: ReleaseQuery) -> Page[ReleaseRead]:
    """Releases matching ``q``, oldest first, keyset-paginated on the release id."""
    conditions: list[ColumnElement[bool]] = []
    if q.plugin:
        # A release its publisher may not claim the id for is filed without one: its manifest names it.
        unclaimed = and_(Release.plugin_id.is_(None), Release.manifest["id"].as_string() == q.plugin)
        conditions.append(or_(Release.plugin_id == q.plugin, unclaimed))
    if q.publisher:
        conditions.append(Release.publisher_id == q.publisher)
    if q.state:
        conditions.append(Release.state == q.state)
    if q.waiting:
        conditions.append(waiting_releases(release_spellings(session, q.reviewer) if q.reviewer else None))
    total = session.scalar(select(func.count(Release.id)).where(*conditions)) or 0
    if q.cursor:
        conditions.append(Release.id > int(q.cursor))
    rows = list(session.scalars(select(Release).where(*conditions).order_by(Release.id).limit(q.limit + 1)))
    more = len(rows) > q.limit
    rows = rows[: q.limit]
    return Page(
        items=tuple(release_reads(session, rows)), next_cursor=str(rows[-1].id) if more else None, total=total
    )


def list_publishers(session: Session, q: PublisherQuery) -> Page[PublisherRead]:
    """Publishers matching ``q``, by id, keyset-paginated on the id as releases are on theirs."""
    conditions: list[ColumnElement[bool]] = []
    if q.waiting:
        who = publisher_spellings(session, q.reviewer) if q.reviewer else None
        conditions.append(waiting_publishers(who))
    total = session.scalar(select(func.count(Publisher.id)).where(*conditions)) or 0
    if q.cursor:
        conditions.append(Publisher.id > q.cursor)
    found = select(Publisher).where(*conditions).order_by(Publisher.id).limit(q.limit + 1)
    rows = list(session.scalars(found))
    more = len(rows) > q.limit
    rows = rows[: q.limit]
    return Page(
        items=tuple(publisher_reads(session, rows)), next_cursor=rows[-1].id if more else None, total=total
    )


def release_diff(session: Session, release_id: int) -> ReleaseDiff:
    """The diff of a release against the newest lower version of its plugin that was ever approved."""
    row = release_row(session, release_id)
    manifest, problem = stored_manifest(row.manifest)
    if manifest is None and problem is not None:
        raise InvalidInput(
            "release", f"release {row.id}'s manifest fails today's rules ({problem.key}: {problem.problem}): "
            "there is nothing to compare",
        )
    if manifest is None:
        raise InvalidInput("release", f"release {row.id} has no readable manifest to compare")
    candidates = (
        session.scalars(
            select(Release).where(
                Release.plugin_id == row.plugin_id, Release.id != row.id, Release.state.in_(EVER_APPROVED)
            )
        ).all()
        if row.plugin_id
        else []
    )
    # A baseline today's rules refuse never runs: what it asked for is compared as new again.
    older = [
        c for c in candidates if Version(c.version) < Version(row.version) and not _refused(c.manifest)
    ]
    base = max(older, key=lambda c: Version(c.version), default=None)
    if base is None:
        return diff_manifests(release_id=row.id, manifest=manifest, version=row.version)
    granted = session.scalars(
        select(ScopeGrant.scope).where(ScopeGrant.release_id == base.id, ScopeGrant.granted.is_(True))
    )
    return diff_manifests(
        release_id=row.id,
        manifest=manifest,
        version=row.version,
        baseline_id=base.id,
        baseline=load_manifest(base),
        baseline_version=base.version,
        baseline_granted=frozenset(granted),
    )


def active_policy(
    session: Session, left_out: list[LeftOut] | None = None
) -> dict[str, dict[str, ActiveRelease]]:
    """Plugin id → version → approved (not suspended) release with its granted scopes; two queries.

    Releases of a suspended publisher are left out: suspending a publisher stops all its plugins. So is
    one whose stored manifest fails today's rules (filed before they tightened): it is appended to
    ``left_out`` when given, for the host to say so.
    """
    approved = ReleaseState.APPROVED.value
    live = (Release.state == approved) & Release.publisher_id.in_(
        select(Publisher.id).where(Publisher.suspended.is_(False))
    )
    rows = session.execute(
        select(Release.id, Release.plugin_id, Release.version, Release.manifest, Publisher.id, Publisher.kind)
        .join(Publisher, Publisher.id == Release.publisher_id)
        .where(live)
    ).all()
    scopes: dict[int, set[str]] = {}
    for release_id, scope in session.execute(
        select(ScopeGrant.release_id, ScopeGrant.scope)
        .join(Release, Release.id == ScopeGrant.release_id)
        .where(live, ScopeGrant.granted.is_(True))
    ):
        scopes.setdefault(release_id, set()).add(scope)
    policy: dict[str, dict[str, ActiveRelease]] = {}
    for release_id, plugin_id, version, manifest, publisher, kind in rows:
        if plugin_id is None:  # pragma: no cover - an approved release always has a plugin
            continue
        reviewed, problem = stored_manifest(manifest)
        if problem is not None:
            if left_out is not None:
                left_out.append(LeftOut(release_id=release_id, plugin_id=plugin_id, version=version,
                                        problem=problem))
            continue
        policy.setdefault(plugin_id, {})[version] = ActiveRelease(
            release_id=release_id,
            plugin_id=plugin_id,
            version=version,
            granted_scopes=frozenset(scopes.get(release_id, ())),
            oauth=reviewed.oauth if reviewed is not None else None,
            publisher=publisher,
            kind=kind,
            manifest=reviewed,
        )
    return policy


def approved_manifest(session: Session, plugin_id: str) -> Manifest | None:
    """The manifest of ``plugin_id``'s newest approved release (its publisher not suspended) whose
    manifest passes today's rules, or None: as the live policy, a release refused by them is left out.

    What reviewers approved for the newest version every host is moving to: the same on every host,
    whatever version, if any, each has installed.
    """
    rows = session.execute(
        select(Release.version, Release.manifest)
        .join(Publisher, Publisher.id == Release.publisher_id)
        .where(
            Release.plugin_id == plugin_id,
            Release.state == ReleaseState.APPROVED.value,
            Publisher.suspended.is_(False),
            Release.manifest.is_not(None),
        )
    ).all()
    for _version, manifest in sorted(rows, key=lambda row: Version(row[0]), reverse=True):
        reviewed, problem = stored_manifest(manifest)
        if problem is None:
            return reviewed
    return None


def _refused(snapshot: object) -> bool:
    """True when today's rules refuse a stored manifest: its release never runs."""
    return stored_manifest(snapshot)[1] is not None
