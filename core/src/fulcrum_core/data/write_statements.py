"""Plugin storage's write statements, built once per dialect (and per shape) rather than per write.

A statement built per call costs more CPU than the database's own work: every ``values()`` and
``where()`` coerces its clauses, and executing it computes a fresh cache key to find the compiled
form. A prebuilt statement's key is memoised on it, and each write's values travel as bound
parameters (``pid``, ``k``, ``v``, ``now``, ``delta``, ``lower``, ``upper``, and per measure
``d_<measure>`` and ``l_<measure>``). Typed by the columns they meet, so ``now`` is bound through
:class:`~fulcrum_core.data.types.UTCDateTime` as a literal value would be.
"""

from __future__ import annotations

from functools import cache
from typing import Any, NamedTuple, cast

from sqlalchemy import ColumnElement, LargeBinary, Table, bindparam, delete, func, select, true, update
from sqlalchemy import cast as sql_cast

from fulcrum_core.data._upsert import insert_for
from fulcrum_core.data.models.plugin_storage import PluginCounterRow, PluginDocumentRow, PluginStorageUsageRow

__all__ = [
    "CounterWrites", "DocumentWrites", "charge_statement", "counter_writes", "document_writes", "size_of",
]

_DOCS = cast(Table, PluginDocumentRow.__table__)
_COUNTERS = cast(Table, PluginCounterRow.__table__)
_USAGE = cast(Table, PluginStorageUsageRow.__table__)


class DocumentWrites(NamedTuple):
    """A document's insert (``RETURNING`` the key, nothing on conflict), its size under a row lock,
    its replacement, and its delete (``RETURNING`` the old size)."""

    insert: Any
    locked_size: Any
    replace: Any
    delete: Any


class CounterWrites(NamedTuple):
    """A counter's insert (``RETURNING`` the value, nothing on conflict) and its bounded move, by
    which bounds it has (``RETURNING`` the new value where the bounds still hold)."""

    insert: Any
    moves: dict[tuple[bool, bool], Any]


def size_of(dialect: str, column: ColumnElement[str]) -> ColumnElement[int]:
    """A text column's UTF-8 bytes in SQL: ``octet_length`` on PostgreSQL, SQLite's ``length`` of
    the text as a BLOB (what :func:`fulcrum_sdk.storage.document_size` counts in Python)."""
    if dialect == "postgresql":
        return cast(ColumnElement[int], func.octet_length(column))
    return cast(ColumnElement[int], func.length(sql_cast(column, LargeBinary)))


@cache
def document_writes(dialect: str) -> DocumentWrites:
    """The document statements for ``dialect``."""
    size = size_of(dialect, _DOCS.c.value)
    row = (_DOCS.c.plugin_id == bindparam("pid")) & (_DOCS.c.key == bindparam("k"))
    insert = (
        insert_for(dialect, _DOCS)
        .values(plugin_id=bindparam("pid"), key=bindparam("k"), value=bindparam("v"),
                updated_at=bindparam("now"))
        .on_conflict_do_nothing(index_elements=[_DOCS.c.plugin_id, _DOCS.c.key])
        .returning(_DOCS.c.key)
    )
    return DocumentWrites(
        insert=insert,
        locked_size=select(size).where(row).with_for_update(),
        replace=update(_DOCS).where(row).values(value=bindparam("v"), updated_at=bindparam("now")),
        delete=delete(_DOCS).where(row).returning(size),
    )


@cache
def counter_writes(dialect: str) -> CounterWrites:
    """The counter statements for ``dialect``."""
    col = _COUNTERS.c.value
    row = (_COUNTERS.c.plugin_id == bindparam("pid")) & (_COUNTERS.c.key == bindparam("k"))
    insert = (
        insert_for(dialect, _COUNTERS)
        .values(plugin_id=bindparam("pid"), key=bindparam("k"), value=bindparam("delta"),
                updated_at=bindparam("now"))
        .on_conflict_do_nothing(index_elements=[_COUNTERS.c.plugin_id, _COUNTERS.c.key])
        .returning(col)
    )
    moves: dict[tuple[bool, bool], Any] = {}
    for has_lower in (False, True):
        for has_upper in (False, True):
            within: ColumnElement[bool] = true()
            if has_lower:
                within = within & (col + bindparam("delta") >= bindparam("lower"))
            if has_upper:
                within = within & (col + bindparam("delta") <= bindparam("upper"))
            moves[has_lower, has_upper] = (
                update(_COUNTERS).where(row, within)
                .values(value=col + bindparam("delta"), updated_at=bindparam("now"))
                .returning(col)
            )
    return CounterWrites(insert=insert, moves=moves)


@cache
def charge_statement(measures: tuple[str, ...], limited: tuple[str, ...]) -> Any:
    """The usage row's update adding ``d_<m>`` to each of ``measures``, taken only while each of
    ``limited`` stays within ``l_<m>``; ``RETURNING`` the plugin id, so no row means not taken."""
    where = [_USAGE.c.plugin_id == bindparam("pid")]
    where += [_USAGE.c[m] + bindparam(f"d_{m}") <= bindparam(f"l_{m}") for m in limited]
    return (
        update(_USAGE)
        .where(*where)
        .values({m: _USAGE.c[m] + bindparam(f"d_{m}") for m in measures})
        .returning(_USAGE.c.plugin_id)
    )
