"""Refresh tokens in families: every use rotates the token, and reusing a rotated one revokes them all.

A family starts with an authorization code and ends when it is revoked (RFC 7009, reuse, a
replayed code, or the client being disabled). Issuing into a family locks its row first and refuses
a revoked family, so a token being issued while the family is revoked cannot survive the revocation.
Tokens are stored as SHA-256 digests. Rotation is one conditional ``UPDATE``, so of two concurrent
uses of one token exactly one wins; the other is a reuse.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Final

import msgspec
from sqlalchemy import select, update

from fulcrum_core.data.db import Database
from fulcrum_core.data.models.oauth_code import OAuthCodeRow
from fulcrum_core.data.models.oauth_refresh_token import OAuthRefreshTokenRow
from fulcrum_core.data.models.oauth_token_family import OAuthTokenFamilyRow
from fulcrum_core.data.types import utcnow
from fulcrum_core.oauth.clients import hash_secret

__all__ = ["REFRESH_TTL", "FamilyRevoked", "RefreshToken", "RefreshTokenStore", "new_family"]

REFRESH_TTL: Final = timedelta(days=30)


class FamilyRevoked(Exception):
    """The family was revoked (or never existed): no token may be issued into it."""


def new_family(client_id: str, now: datetime) -> OAuthTokenFamilyRow:
    """A new family row to add in the caller's session (the code store adds it with the code)."""
    return OAuthTokenFamilyRow(family_id=secrets.token_hex(16), client_id=client_id, created_at=now)


class RefreshToken(msgspec.Struct, frozen=True, kw_only=True):
    """A refresh token's record as authlib sees it (``TokenMixin``)."""

    token_hash: str
    family_id: str
    client_id: str
    subject: str
    subject_kind: str
    scope: str
    expires_at: datetime
    revoked: bool = False

    def check_client(self, client: object) -> bool:
        return getattr(client, "client_id", None) == self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return max(0, int((self.expires_at - utcnow()).total_seconds()))

    def is_expired(self) -> bool:
        return self.expires_at <= utcnow()

    def is_revoked(self) -> bool:
        return self.revoked


def _view(row: OAuthRefreshTokenRow, *, revoked: bool) -> RefreshToken:
    return RefreshToken(
        token_hash=row.token_hash,
        family_id=row.family_id,
        client_id=row.client_id,
        subject=row.subject,
        subject_kind=row.subject_kind,
        scope=row.scope,
        expires_at=row.expires_at,
        revoked=revoked,
    )


class RefreshTokenStore:
    """Reads and writes the ``oauth_refresh_tokens`` table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def issue(
        self,
        *,
        family_id: str | None,
        client_id: str,
        subject: str,
        subject_kind: str,
        scope: str,
        now: datetime | None = None,
    ) -> str:
        """A new refresh token in ``family_id`` (a new family when ``None``); returns the token.

        Raises ``FamilyRevoked`` when the family is unknown or revoked.
        """
        at = now or utcnow()
        token = secrets.token_urlsafe(32)
        with self._db.session() as session:
            if family_id is None:
                family = new_family(client_id, at)
                session.add(family)
                family_id = family.family_id
            else:
                locked = session.execute(
                    select(OAuthTokenFamilyRow.revoked_at, OAuthTokenFamilyRow.client_id)
                    .where(OAuthTokenFamilyRow.family_id == family_id)
                    .with_for_update()
                ).one_or_none()
                if locked is None or locked.revoked_at is not None or locked.client_id != client_id:
                    raise FamilyRevoked(family_id)
            session.add(
                OAuthRefreshTokenRow(
                    token_hash=hash_secret(token),
                    family_id=family_id,
                    client_id=client_id,
                    subject=subject,
                    subject_kind=subject_kind,
                    scope=scope,
                    issued_at=at,
                    expires_at=at + REFRESH_TTL,
                )
            )
        return token

    def find(self, token: str) -> RefreshToken | None:
        """The record of ``token`` whatever its state (for revocation and introspection)."""
        with self._db.read_session() as session:
            row = session.get(OAuthRefreshTokenRow, hash_secret(token))
            if row is None:
                return None
            return _view(row, revoked=row.revoked_at is not None or row.rotated_at is not None)

    def rotate(self, token: str, *, now: datetime | None = None) -> RefreshToken | None:
        """Use ``token`` once: the live record, or ``None`` (revoking the family if it was reused)."""
        at = now or utcnow()
        digest = hash_secret(token)
        with self._db.session() as session:
            claimed = session.execute(
                update(OAuthRefreshTokenRow)
                .where(
                    OAuthRefreshTokenRow.token_hash == digest,
                    OAuthRefreshTokenRow.rotated_at.is_(None),
                    OAuthRefreshTokenRow.revoked_at.is_(None),
                    OAuthRefreshTokenRow.expires_at > at,
                )
                .values(rotated_at=at)
                .returning(OAuthRefreshTokenRow.token_hash)
            ).scalar_one_or_none()
            row = session.get(OAuthRefreshTokenRow, digest, populate_existing=True)
            if row is None:
                return None
            reused = claimed is None and row.rotated_at is not None and row.revoked_at is None
            found = _view(row, revoked=False)
        if reused:
            self.revoke_family(found.family_id, now=at)
        return found if claimed is not None else None

    def revoke_family(self, family_id: str, *, now: datetime | None = None) -> None:
        """Revoke every token of the family, and the family itself (a reuse, a code replay, RFC 7009)."""
        at = now or utcnow()
        with self._db.session() as session:
            session.execute(
                update(OAuthTokenFamilyRow)
                .where(OAuthTokenFamilyRow.family_id == family_id, OAuthTokenFamilyRow.revoked_at.is_(None))
                .values(revoked_at=at)
            )
            session.execute(
                update(OAuthRefreshTokenRow)
                .where(OAuthRefreshTokenRow.family_id == family_id, OAuthRefreshTokenRow.revoked_at.is_(None))
                .values(revoked_at=at)
            )

    def revoke_client(self, client_id: str, *, now: datetime | None = None) -> None:
        """Revoke every family and token of a client (it was disabled, or its scopes narrowed)."""
        at = now or utcnow()
        with self._db.session() as session:
            session.execute(
                update(OAuthTokenFamilyRow)
                .where(OAuthTokenFamilyRow.client_id == client_id, OAuthTokenFamilyRow.revoked_at.is_(None))
                .values(revoked_at=at)
            )
            session.execute(
                update(OAuthRefreshTokenRow)
                .where(OAuthRefreshTokenRow.client_id == client_id, OAuthRefreshTokenRow.revoked_at.is_(None))
                .values(revoked_at=at)
            )

    def revoke_subject(self, client_id: str, subjects: Iterable[str], *, now: datetime | None = None) -> int:
        """Revoke every family of ``client_id`` that holds tokens for one of ``subjects`` (a customer
        withdrew the consent behind them), and every family an authorization code for one of them
        started: a code not yet redeemed, or whose redemption has not stored its first refresh token
        yet, would otherwise mint a family the revocation never saw. Returns how many families were
        revoked."""
        wanted = sorted(set(subjects))
        if not wanted:
            return 0
        with self._db.read_session() as session:
            tokens = select(OAuthRefreshTokenRow.family_id).where(
                OAuthRefreshTokenRow.client_id == client_id, OAuthRefreshTokenRow.subject.in_(wanted)
            )
            codes = select(OAuthCodeRow.family_id).where(
                OAuthCodeRow.client_id == client_id, OAuthCodeRow.subject.in_(wanted)
            )
            families = sorted(set(session.scalars(tokens)) | set(session.scalars(codes)))
        for family_id in families:
            self.revoke_family(family_id, now=now)
        return len(families)
