"""``SqlPluginStorage``: the SDK's ``PluginStorage`` backed by the platform database.

Every operation is one SQL statement in its own short transaction, so it is atomic on SQLite and
PostgreSQL alike: a bounded ``add`` is an ``INSERT … ON CONFLICT DO UPDATE … WHERE <bounds>
RETURNING`` (or a conditional ``UPDATE … RETURNING`` when a fresh counter would already break a
bound), never a read followed by a write. Keys live in the plugin's own namespace. Any database
failure surfaces as :class:`~fulcrum_sdk.errors.StorageUnavailable`.
"""

from __future__ import annotations

from typing import Any, cast

import msgspec
from fulcrum_sdk.errors import LimitExceeded
from sqlalchemy import ColumnElement, Table, delete, literal, select, true, update

from fulcrum_core.data._upsert import insert_for
from fulcrum_core.data.db import Database
from fulcrum_core.data.errors import storage_errors
from fulcrum_core.data.models.plugin_storage import MAX_KEY_LENGTH, PluginCounterRow, PluginDocumentRow
from fulcrum_core.data.types import utcnow

__all__ = ["SqlPluginStorage"]

_DOCS = cast(Table, PluginDocumentRow.__table__)
_COUNTERS = cast(Table, PluginCounterRow.__table__)


def _check_key(key: str) -> str:
    if not isinstance(key, str) or not key:
        raise ValueError("storage key must be a non-empty string")
    if len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"storage key is {len(key)} characters; at most {MAX_KEY_LENGTH} are allowed")
    return key


class SqlPluginStorage:
    """Key-value documents and atomic bounded counters private to the plugin ``plugin_id``."""

    __slots__ = ("_db", "plugin_id")

    def __init__(self, db: Database, plugin_id: str) -> None:
        if not plugin_id:
            raise ValueError("plugin_id must be non-empty")
        self._db = db
        self.plugin_id = plugin_id

    def __repr__(self) -> str:
        return f"SqlPluginStorage(plugin_id={self.plugin_id!r})"

    # --- documents -------------------------------------------------------------------------------

    def get(self, key: str) -> Any | None:
        """The JSON value stored at ``key``, or ``None``."""
        _check_key(key)
        stmt = select(_DOCS.c.value).where(_DOCS.c.plugin_id == self.plugin_id, _DOCS.c.key == key)
        with storage_errors(self.plugin_id), self._db.reader.connect() as conn:
            raw = conn.execute(stmt).scalar_one_or_none()
        return None if raw is None else msgspec.json.decode(raw)

    def put(self, key: str, value: Any) -> None:
        """Store a JSON-encodable value at ``key``, replacing any earlier one."""
        _check_key(key)
        try:
            encoded = msgspec.json.encode(value).decode()
        except (TypeError, msgspec.EncodeError) as exc:
            raise TypeError(f"value for storage key {key!r} is not JSON-encodable: {exc}") from None
        now = utcnow()
        stmt = insert_for(self._db.dialect, _DOCS).values(
            plugin_id=self.plugin_id, key=key, value=encoded, updated_at=now
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[_DOCS.c.plugin_id, _DOCS.c.key], set_={"value": encoded, "updated_at": now}
        )
        with storage_errors(self.plugin_id), self._db.engine.begin() as conn:
            conn.execute(stmt)

    def delete(self, key: str) -> None:
        """Remove ``key``; no error when it is absent."""
        _check_key(key)
        stmt = delete(_DOCS).where(_DOCS.c.plugin_id == self.plugin_id, _DOCS.c.key == key)
        with storage_errors(self.plugin_id), self._db.engine.begin() as conn:
            conn.execute(stmt)

    # --- counters --------------------------------------------------------------------------------

    def counter(self, key: str) -> int:
        """The current value of counter ``key`` (0 when it was never touched)."""
        _check_key(key)
        stmt = select(_COUNTERS.c.value).where(
            _COUNTERS.c.plugin_id == self.plugin_id, _COUNTERS.c.key == key
        )
        with storage_errors(self.plugin_id), self._db.reader.connect() as conn:
            value = conn.execute(stmt).scalar_one_or_none()
        return int(value or 0)

    def add(self, key: str, delta: int, *, lower: int | None = None, upper: int | None = None) -> int:
        """Atomically add ``delta`` to counter ``key`` and return the new value.

        Raises :class:`~fulcrum_sdk.errors.LimitExceeded` and changes nothing when the result would
        fall below ``lower`` or rise above ``upper``; concurrent callers never both pass a bound.
        """
        _check_key(key)
        if isinstance(delta, bool) or not isinstance(delta, int):
            raise TypeError(f"delta must be an int, got {type(delta).__name__}")
        if lower is not None and upper is not None and lower > upper:
            raise ValueError(f"lower bound {lower} is above upper bound {upper}")
        col = _COUNTERS.c.value
        within: ColumnElement[bool] = true()
        if lower is not None:
            within = within & (col + delta >= lower)
        if upper is not None:
            within = within & (col + delta <= upper)
        fresh_ok = (lower is None or delta >= lower) and (upper is None or delta <= upper)
        now = utcnow()
        with storage_errors(self.plugin_id), self._db.engine.begin() as conn:
            if fresh_ok:
                # A missing counter starts at 0, and 0 + delta is within bounds: insert it, or
                # update the existing row only where the bounds still hold.
                stmt = (
                    insert_for(self._db.dialect, _COUNTERS)
                    .values(plugin_id=self.plugin_id, key=key, value=delta, updated_at=now)
                    .on_conflict_do_update(
                        index_elements=[_COUNTERS.c.plugin_id, _COUNTERS.c.key],
                        set_={"value": col + literal(delta), "updated_at": now},
                        where=within,
                    )
                    .returning(col)
                )
            else:
                # A missing counter would break a bound: only an existing row may move.
                stmt = (
                    update(_COUNTERS)
                    .where(_COUNTERS.c.plugin_id == self.plugin_id, _COUNTERS.c.key == key, within)
                    .values(value=col + delta, updated_at=now)
                    .returning(col)
                )
            new = conn.execute(stmt).scalar_one_or_none()
            if new is None:
                current = conn.execute(
                    select(col).where(_COUNTERS.c.plugin_id == self.plugin_id, _COUNTERS.c.key == key)
                ).scalar_one_or_none()
                raise LimitExceeded(key, int(current or 0), delta, lower, upper)
        return int(new)
