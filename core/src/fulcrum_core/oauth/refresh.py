"""Refresh tokens in families: every use rotates the token, and reusing a rotated one revokes them all.

A family starts with an authorization code and ends when it is revoked (RFC 7009, reuse, a
replayed code, or the client being disabled). Issuing into a family locks its row first and refuses
a revoked family, so a token being issued while the family is revoked cannot survive the revocation.
Tokens are stored as SHA-256 digests. Rotation is one conditional ``UPDATE``, so of two concurrent
uses of one token exactly one spends it.

The other one is not necessarily a reuse: a mobile app whose screens refresh together, or that
retries a refresh whose answer a network timeout lost, presents one token twice within moments.
Within the rotation grace period (``reuse_grace_seconds`` after the token was spent), its own
client may present it again up to ``GRACE_REUSES`` times; each time another token of the same family
is issued, and the successor issued first stays valid too (both branches live, as with Okta's grace
period). The grace never revives anything: a revoked or expired token, or one of a revoked family, is
refused, and the new token is issued under the family's lock like any other. A spent token presented
after its grace period or beyond ``GRACE_REUSES`` is a reuse and revokes the family; so does any token,
spent or not, presented by a client it was not issued to (it leaked).

A family started by an authorization that recorded the customer's consent names it: no token joins
the family once that consent has expired or been revoked (the family is revoked then), and no refresh
token is valid past the consent's expiry, so rotating for ever never outlives what the customer gave.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Final

import msgspec
from sqlalchemy import select, update

from fulcrum_core.data.db import Database
from fulcrum_core.data.models.consent import ConsentRow
from fulcrum_core.data.models.oauth_code import OAuthCodeRow
from fulcrum_core.data.models.oauth_refresh_token import OAuthRefreshTokenRow
from fulcrum_core.data.models.oauth_token_family import OAuthTokenFamilyRow
from fulcrum_core.data.reconnect import idempotent_read
from fulcrum_core.data.types import utcnow
from fulcrum_core.oauth.clients import hash_secret

__all__ = [
    "GRACE_REUSES",
    "REFRESH_TTL",
    "ConsentEnded",
    "FamilyRevoked",
    "RefreshToken",
    "RefreshTokenStore",
    "new_family",
]

REFRESH_TTL: Final = timedelta(days=30)
GRACE_REUSES: Final = 2
"""How many times one spent token may be presented again within its grace period: enough for two
screens and a retry refreshing together, few enough that a stolen token mints at most this many
extra branches of the family before its use revokes them all."""


class FamilyRevoked(Exception):
    """The family was revoked (or never existed): no token may be issued into it."""


class ConsentEnded(FamilyRevoked):
    """The customer's consent the family rests on has expired or was revoked; says which, and when."""

    def __init__(self, why: str, family_id: str) -> None:
        super().__init__(why)
        self.why = why
        self.family_id = family_id

    def __str__(self) -> str:
        return self.why


def new_family(client_id: str, now: datetime, *, consent_id: str | None = None) -> OAuthTokenFamilyRow:
    """A new family row to add in the caller's session (the code store adds it with the code), resting
    on ``consent_id`` when the authorization recorded one."""
    return OAuthTokenFamilyRow(
        family_id=secrets.token_hex(16), client_id=client_id, created_at=now, consent_id=consent_id
    )


def _consent_ended(consent: ConsentRow | None, at: datetime) -> str | None:
    """Why no token may rest on ``consent`` at ``at`` any more, or ``None`` while it is live."""
    if consent is None:
        ended = "no longer exists"
    elif consent.status == "revoked":
        revoked = consent.revoked_at.isoformat(timespec="seconds") if consent.revoked_at else "a while ago"
        ended = f"was revoked at {revoked}"
    elif consent.expires_at <= at:
        ended = f"expired at {consent.expires_at.isoformat(timespec='seconds')}"
    elif consent.status != "authorised":
        ended = f"is {consent.status}"
    else:
        return None
    return f"the customer's consent this authorization rests on {ended}: the customer must authorize again"


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
    # Why ``revoked`` (as ``find`` reports it) may be true: spent by a rotation, or revoked outright.
    rotated_at: datetime | None = None
    revoked_at: datetime | None = None
    grace_reuses: int = 0

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
        rotated_at=row.rotated_at,
        revoked_at=row.revoked_at,
        grace_reuses=row.grace_reuses,
    )


class RefreshTokenStore:
    """Reads and writes the ``oauth_refresh_tokens`` table.

    ``reuse_grace_seconds`` is the rotation grace period (the setting ``refresh_reuse_grace_seconds``);
    0, the default here, is strict rotation: any second use of a token is a reuse.
    """

    def __init__(self, db: Database, *, reuse_grace_seconds: int = 0) -> None:
        self._db = db
        self._grace = timedelta(seconds=max(0, reuse_grace_seconds))

    def may_rotate(self, record: RefreshToken, client_id: str, *, now: datetime | None = None) -> bool:
        """Whether ``rotate`` would accept ``record`` for ``client_id`` at ``now``, read without locking
        (for checks made before spending a token; ``rotate`` alone decides)."""
        at = now or utcnow()
        if record.client_id != client_id or record.revoked_at is not None or record.expires_at <= at:
            return False
        if record.rotated_at is None:
            return True
        in_grace = bool(self._grace) and record.rotated_at >= at - self._grace
        return in_grace and record.grace_reuses < GRACE_REUSES

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

        Raises ``FamilyRevoked`` when the family is unknown or revoked, and ``ConsentEnded`` (revoking
        the family) when the consent it rests on has ended. The token expires ``REFRESH_TTL`` from now,
        or with that consent if it expires sooner.
        """
        at = now or utcnow()
        token = secrets.token_urlsafe(32)
        expires_at = at + REFRESH_TTL
        try:
            with self._db.session() as session:
                if family_id is None:
                    family = new_family(client_id, at)
                    session.add(family)
                    family_id = family.family_id
                else:
                    locked = session.execute(
                        select(
                            OAuthTokenFamilyRow.revoked_at,
                            OAuthTokenFamilyRow.client_id,
                            OAuthTokenFamilyRow.consent_id,
                        )
                        .where(OAuthTokenFamilyRow.family_id == family_id)
                        .with_for_update()
                    ).one_or_none()
                    if locked is None or locked.revoked_at is not None or locked.client_id != client_id:
                        raise FamilyRevoked(family_id)
                    if locked.consent_id is not None:
                        consent = session.get(ConsentRow, locked.consent_id)
                        ended = _consent_ended(consent, at)
                        if ended is not None:
                            raise ConsentEnded(ended, family_id)
                        if consent is not None:  # live, as ``ended`` says: no token outlives it
                            expires_at = min(expires_at, consent.expires_at)
                session.add(
                    OAuthRefreshTokenRow(
                        token_hash=hash_secret(token),
                        family_id=family_id,
                        client_id=client_id,
                        subject=subject,
                        subject_kind=subject_kind,
                        scope=scope,
                        issued_at=at,
                        expires_at=expires_at,
                    )
                )
        except ConsentEnded as ended:
            self.revoke_family(ended.family_id, now=at)
            raise
        return token

    @idempotent_read
    def consent_ended(self, family_id: str, *, now: datetime | None = None) -> str | None:
        """Why the family's tokens are refused because the consent it rests on ended, or ``None`` (it
        rests on none, or that consent is live): the words a refused refresh gives its client."""
        with self._db.read_session() as session:
            consent_id = session.scalar(
                select(OAuthTokenFamilyRow.consent_id).where(OAuthTokenFamilyRow.family_id == family_id)
            )
            if consent_id is None:
                return None
            return _consent_ended(session.get(ConsentRow, consent_id), now or utcnow())

    @idempotent_read
    def find(self, token: str) -> RefreshToken | None:
        """The record of ``token`` whatever its state (for revocation and introspection)."""
        with self._db.read_session() as session:
            row = session.get(OAuthRefreshTokenRow, hash_secret(token))
            if row is None:
                return None
            return _view(row, revoked=row.revoked_at is not None or row.rotated_at is not None)

    def rotate(self, token: str, *, client_id: str, now: datetime | None = None) -> RefreshToken | None:
        """Use ``token`` for ``client_id``: its record, or ``None`` (revoking the family if it was reused).

        A live token is spent. A token spent no more than the grace period ago is accepted again, at
        most ``GRACE_REUSES`` times, when its own client presents it and it is neither revoked nor
        expired. Any other use of a spent token, and any token presented by another client, revokes
        the family.
        """
        at = now or utcnow()
        digest = hash_secret(token)
        usable = (
            OAuthRefreshTokenRow.token_hash == digest,
            OAuthRefreshTokenRow.client_id == client_id,
            OAuthRefreshTokenRow.revoked_at.is_(None),
            OAuthRefreshTokenRow.expires_at > at,
        )
        with self._db.session() as session:
            claimed = session.execute(
                update(OAuthRefreshTokenRow)
                .where(*usable, OAuthRefreshTokenRow.rotated_at.is_(None))
                .values(rotated_at=at)
                .returning(OAuthRefreshTokenRow.token_hash)
            ).scalar_one_or_none()
            if claimed is None and self._grace:
                # Spent already (perhaps by a request still running): within the grace period, and
                # while the count allows, this use is a repeat, not a reuse. One conditional UPDATE,
                # so concurrent repeats never exceed the count: SQLite runs writers one at a time, and
                # PostgreSQL (read committed) checks the WHERE again on a row another writer changed.
                claimed = session.execute(
                    update(OAuthRefreshTokenRow)
                    .where(
                        *usable,
                        OAuthRefreshTokenRow.rotated_at.is_not(None),
                        OAuthRefreshTokenRow.rotated_at >= at - self._grace,
                        OAuthRefreshTokenRow.grace_reuses < GRACE_REUSES,
                    )
                    .values(grace_reuses=OAuthRefreshTokenRow.grace_reuses + 1)
                    .returning(OAuthRefreshTokenRow.token_hash)
                ).scalar_one_or_none()
            row = session.get(OAuthRefreshTokenRow, digest, populate_existing=True)
            if row is None:
                return None
            # A repeat by its own client within the grace period that found the token expired (it was
            # spent in its last moments) is refused, but is no sign of theft: the family stays live.
            expired_repeat = (
                row.client_id == client_id
                and row.expires_at <= at
                and row.rotated_at is not None
                and bool(self._grace)
                and row.rotated_at >= at - self._grace
            )
            reused = (
                claimed is None
                and row.revoked_at is None
                and (row.rotated_at is not None or row.client_id != client_id)
                and not expired_repeat
            )
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
