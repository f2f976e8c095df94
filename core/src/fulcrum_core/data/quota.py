"""A plugin's storage quota, charged in the transaction of each of its writes.

``plugin_storage_usage`` holds what each plugin keeps (documents, their bytes, counters). A write adds
what it changes to that row as its transaction's last statement, so the row lock is held only until
the commit, and the ``UPDATE`` takes the growth only while the result stays within the quota: a write
past it raises :class:`~fulcrum_sdk.errors.QuotaExceeded` and its transaction rolls back whole. A
change that does not grow a measure (a smaller document, a delete) is always taken.
"""

from __future__ import annotations

import logging
from typing import Final, cast

import msgspec
from fulcrum_sdk.errors import QuotaExceeded, StorageUnavailable
from fulcrum_sdk.storage import StorageQuota
from sqlalchemy import Connection, Table, func, select, update

from fulcrum_core.data._upsert import insert_for
from fulcrum_core.data.db import Database
from fulcrum_core.data.models.plugin_storage import PluginCounterRow, PluginDocumentRow, PluginStorageUsageRow
from fulcrum_core.data.write_statements import charge_statement, size_of
from fulcrum_core.observability.throttle import ThrottledWarning

__all__ = ["MEASURES", "Usage", "busy", "charge", "recount", "size_of", "usage"]

_USAGE = cast(Table, PluginStorageUsageRow.__table__)
_DOCS = cast(Table, PluginDocumentRow.__table__)
_COUNTERS = cast(Table, PluginCounterRow.__table__)

MEASURES: Final = ("documents", "document_bytes", "counters")

log = logging.getLogger("fulcrum.storage")

_REFUSED: dict[str, ThrottledWarning] = {}
"""One warning a minute per plugin whose writes its quota refuses (a plugin's refusals never hide
another's)."""

_TRIES: Final = 3
"""Rounds of update-then-look before a write gives up on a usage row that others keep moving."""


def charge(
    conn: Connection, plugin_id: str, key: str, quota: StorageQuota | None, changes: dict[str, int]
) -> None:
    """Add ``changes`` (measure → delta) to ``plugin_id``'s usage inside the write's transaction;
    :class:`QuotaExceeded` when a measure that grows would pass ``quota`` (``None``: no limit)."""
    deltas = {name: delta for name, delta in changes.items() if delta}
    if not deltas:
        return
    limited = tuple(name for name, delta in deltas.items() if delta > 0) if quota is not None else ()
    stmt = charge_statement(tuple(deltas), limited)
    params: dict[str, object] = {"pid": plugin_id}
    params.update({f"d_{name}": delta for name, delta in deltas.items()})
    params.update({f"l_{name}": getattr(quota, name) for name in limited})
    where = _USAGE.c.plugin_id == plugin_id
    for _ in range(_TRIES):
        if conn.execute(stmt, params).first() is not None:
            return
        held = conn.execute(select(*(_USAGE.c[m] for m in MEASURES)).where(where)).first()
        if held is None:
            # The plugin's first write: its row, then the update again (a concurrent first write
            # inserts it too, and one of them does nothing).
            _ensure_row(conn, plugin_id)
            continue
        over = _past(held._mapping, deltas, quota)
        if over is not None:
            name, used, limit = over
            _refused(plugin_id)(f"plugin {plugin_id!r}, {name} {used} of {limit}")
            raise QuotaExceeded(key, name, used, limit)
        # Within the quota now: a concurrent write freed room between the two statements.
    raise busy(plugin_id)


def busy(plugin_id: str) -> StorageUnavailable:
    """For a write that kept meeting concurrent writes (PostgreSQL): retrying is safe."""
    return StorageUnavailable(f"plugin storage for {plugin_id!r} is busy; retry later")


def _ensure_row(conn: Connection, plugin_id: str) -> None:
    """The plugin's usage row, at zero, unless it has one (a concurrent insert of it does nothing)."""
    fresh = insert_for(conn.dialect.name, _USAGE).values(plugin_id=plugin_id, **dict.fromkeys(MEASURES, 0))
    conn.execute(fresh.on_conflict_do_nothing(index_elements=[_USAGE.c.plugin_id]))


def _refused(plugin_id: str) -> ThrottledWarning:
    warning = _REFUSED.get(plugin_id)
    if warning is None:
        message = "a plugin storage write was refused at its quota (`fulcrum db storage` shows the use)"
        warning = _REFUSED.setdefault(plugin_id, ThrottledWarning(log, message, every_s=60.0))
    return warning


def _past(
    held: object, deltas: dict[str, int], quota: StorageQuota | None
) -> tuple[str, int, int] | None:
    """The first measure ``deltas`` would take past ``quota`` from ``held``, with its use and limit."""
    if quota is None:
        return None
    for name, delta in deltas.items():
        used = int(held[name])  # type: ignore[index]
        limit = int(getattr(quota, name))
        if delta > 0 and used + delta > limit:
            return name, used, limit
    return None



class Usage(msgspec.Struct, frozen=True, kw_only=True):
    """What one plugin holds in its storage."""

    plugin_id: str
    documents: int
    document_bytes: int
    counters: int


def usage(db: Database) -> list[Usage]:
    """Every plugin's storage usage that a write has kept (a plugin that never wrote has none), by id."""
    stmt = select(_USAGE.c.plugin_id, *(_USAGE.c[m] for m in MEASURES)).order_by(_USAGE.c.plugin_id)
    with db.single_reads.connect() as conn:
        return [Usage(**row._mapping) for row in conn.execute(stmt)]


def recount(db: Database) -> list[Usage]:
    """Count every plugin's documents, bytes and counters from its rows and make its usage row say so;
    the recounted usage, by plugin. For a usage row that drifted: writes by workers still running code
    from before the usage row existed (a rolling deploy across the migration, or code rolled back
    without ``db downgrade``) stored rows without counting them.

    Safe while plugins write: each plugin's row is locked before its rows are counted, so a write
    under way either committed before (counted, and its charge replaced) or charges after the recount
    commits (its rows were not visible to it)."""
    dialect = db.dialect
    size = size_of(dialect, _DOCS.c.key) + size_of(dialect, _DOCS.c.value)
    with db.single_reads.connect() as conn:
        found = (conn.execute(select(t.c.plugin_id).distinct()) for t in (_DOCS, _COUNTERS, _USAGE))
        plugins = sorted({row[0] for rows in found for row in rows})
    counted: list[Usage] = []
    for plugin_id in plugins:
        with db.engine.begin() as conn:
            _ensure_row(conn, plugin_id)
            conn.execute(select(_USAGE.c.plugin_id).where(_USAGE.c.plugin_id == plugin_id).with_for_update())
            documents, document_bytes = conn.execute(
                select(func.count(), func.coalesce(func.sum(size), 0)).where(_DOCS.c.plugin_id == plugin_id)
            ).one()
            counters = conn.execute(
                select(func.count()).where(_COUNTERS.c.plugin_id == plugin_id)
            ).scalar_one()
            now = Usage(
                plugin_id=plugin_id, documents=int(documents), document_bytes=int(document_bytes),
                counters=int(counters),
            )
            values = {m: getattr(now, m) for m in MEASURES}
            conn.execute(update(_USAGE).where(_USAGE.c.plugin_id == plugin_id).values(values))
        counted.append(now)
    return counted
