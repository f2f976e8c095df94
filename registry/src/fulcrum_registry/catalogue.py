"""Catalogue queries: search plugins by name, publisher, kind, scope and state, a page at a time.

Pages are keyset-paginated on the plugin id (the cursor is the last id of the page), so a page is one
indexed range scan however deep the caller pages, and inserts between pages never shift or repeat
entries.
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import ColumnElement, and_, exists, func, or_, select
from sqlalchemy.orm import Session

from fulcrum_registry.models import Plugin, Publisher, Release, ScopeGrant
from fulcrum_registry.schemas import CatalogueQuery, Page, PluginSummary, ReleaseBrief
from fulcrum_registry.workflow import ReleaseState

__all__ = ["LIVE_STATES", "search_plugins"]

LIVE_STATES = (ReleaseState.IN_REVIEW.value, ReleaseState.APPROVED.value, ReleaseState.SUSPENDED.value)
"""Releases that may run or may soon run; the scope filter looks at these."""


def _filters(query: CatalogueQuery) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if query.text:
        conditions.append(
            or_(
                Plugin.id.icontains(query.text, autoescape=True),
                Plugin.name.icontains(query.text, autoescape=True),
                Plugin.name_en.icontains(query.text, autoescape=True),
            )
        )
    if query.publisher:
        conditions.append(Plugin.publisher_id == query.publisher)
    if query.kind:
        conditions.append(Publisher.kind == query.kind)
    if query.scope:
        conditions.append(
            exists().where(
                Release.plugin_id == Plugin.id,
                Release.state.in_(LIVE_STATES),
                ScopeGrant.release_id == Release.id,
                ScopeGrant.scope == query.scope,
                or_(ScopeGrant.granted.is_(None), ScopeGrant.granted.is_(True)),
            )
        )
    if query.state:
        conditions.append(exists().where(Release.plugin_id == Plugin.id, Release.state == query.state))
    return conditions


def _releases_of(session: Session, plugin_ids: list[str]) -> dict[str, list[Release]]:
    by_plugin: dict[str, list[Release]] = defaultdict(list)
    if plugin_ids:
        rows = session.scalars(select(Release).where(Release.plugin_id.in_(plugin_ids)).order_by(Release.id))
        for release in rows:
            by_plugin[release.plugin_id or ""].append(release)
    return by_plugin


def search_plugins(session: Session, query: CatalogueQuery) -> Page[PluginSummary]:
    """One page of plugins matching every filter in ``query``, ordered by id."""
    conditions = _filters(query)
    base = select(Plugin, Publisher.kind, Publisher.suspended).join(
        Publisher, Publisher.id == Plugin.publisher_id
    )
    total = (
        session.scalar(select(func.count()).select_from(base.where(and_(True, *conditions)).subquery())) or 0
    )
    if query.cursor is not None:
        conditions.append(Plugin.id > query.cursor)
    rows = session.execute(
        base.where(and_(True, *conditions)).order_by(Plugin.id).limit(query.limit + 1)
    ).all()
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    releases = _releases_of(session, [plugin.id for plugin, _kind, _suspended in rows])
    items = []
    for plugin, kind, suspended in rows:
        history = releases.get(plugin.id, [])
        latest = history[-1] if history else None
        items.append(
            PluginSummary(
                id=plugin.id,
                name=plugin.name,
                name_en=plugin.name_en,
                publisher_id=plugin.publisher_id,
                kind=kind,
                latest=ReleaseBrief(id=latest.id, version=latest.version, state=latest.state)  # type: ignore[arg-type]
                if latest
                else None,
                approved_versions=tuple(r.version for r in history if r.state == ReleaseState.APPROVED),
                publisher_suspended=bool(suspended),
            )
        )
    return Page(items=tuple(items), next_cursor=rows[-1][0].id if more else None, total=int(total))
