"""Used assertion ids, shared by every worker through ``oauth_assertion_ids``.

A signed assertion is accepted once: the first use records its ``jti`` until the assertion expires,
and any worker given it again finds it there. The identity provider's assertions, the partners'
client assertions (``private_key_jwt``) and the consent page's signed-out login cookies share the
table, each under its own issuer slot, so an id one issuer picked cannot spend another's.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, delete, select

from fulcrum_core.data._upsert import insert_for
from fulcrum_core.data.db import Database
from fulcrum_core.data.models.oauth_assertion import OAuthAssertionIdRow
from fulcrum_core.data.reconnect import idempotent_read
from fulcrum_core.data.types import utcnow

__all__ = ["AssertionIds", "client_slot"]


def client_slot(client_id: str) -> str:
    """The issuer slot of a client's own assertions: never an IdP's issuer, which is an https URL."""
    return f"client:{client_id}"


class AssertionIds:
    """Used assertion ids in ``oauth_assertion_ids``: the first use inserts, a replay finds it there."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def first_use(self, issuer: str, jti: str, expires_at: datetime, *, now: datetime | None = None) -> bool:
        """Record ``jti`` of ``issuer`` until ``expires_at``; False when it was recorded already (a replay).

        Expired ids are swept in the same transaction; the insert is ``ON CONFLICT DO NOTHING``, so two
        workers given the same assertion at once cannot both see a first use.
        """
        at = now or utcnow()
        table = cast(Table, OAuthAssertionIdRow.__table__)
        with self._db.begin() as conn:
            conn.execute(delete(table).where(table.c.expires_at <= at))
            statement = (
                insert_for(conn.dialect.name, table)
                .values(id_hash=_digest(issuer, jti), expires_at=max(expires_at, at) + timedelta(seconds=60))
                .on_conflict_do_nothing(index_elements=["id_hash"])
                .returning(table.c.id_hash)
            )
            inserted = conn.execute(statement).scalar_one_or_none()
        return inserted is not None

    @idempotent_read
    def recorded(self, issuer: str, jti: str, *, now: datetime | None = None) -> bool:
        """Whether ``jti`` of ``issuer`` is recorded and not yet expired (a read: nothing is written)."""
        table = cast(Table, OAuthAssertionIdRow.__table__)
        query = select(table.c.id_hash).where(
            table.c.id_hash == _digest(issuer, jti), table.c.expires_at > (now or utcnow())
        )
        with self._db.read_session() as session:
            return session.execute(query).first() is not None


def _digest(issuer: str, jti: str) -> str:
    """The row's key: SHA-256 of issuer and id, a fixed size whatever the issuer sends."""
    return hashlib.sha256(issuer.encode() + b"\x00" + jti.encode()).hexdigest()
