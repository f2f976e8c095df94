"""Authorization codes: stored as SHA-256 digests, valid 60 seconds, redeemable exactly once.

Redemption is one conditional ``UPDATE`` (unused, unexpired, this client), so two concurrent
redemptions cannot both succeed. A second redemption of a used code is a replay: the refresh-token
family the first one started is revoked (RFC 6749 §4.1.2, RFC 9700 §4.2.4).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

import msgspec
from sqlalchemy import update

from fulcrum_core.data.db import Database
from fulcrum_core.data.models.oauth_code import OAuthCodeRow
from fulcrum_core.data.types import utcnow
from fulcrum_core.oauth.clients import hash_secret
from fulcrum_core.oauth.refresh import RefreshTokenStore, new_family

__all__ = ["CODE_TTL", "AuthorizationCode", "CodeStore"]

CODE_TTL: Final = timedelta(seconds=60)


class AuthorizationCode(msgspec.Struct, frozen=True, kw_only=True):
    """A redeemed code as authlib's grant sees it (``AuthorizationCodeMixin``)."""

    client_id: str
    subject: str
    subject_kind: str
    redirect_uri: str
    scope: str
    code_challenge: str
    code_challenge_method: str
    family_id: str
    code_hash: str

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


class CodeStore:
    """Issues and redeems authorization codes in the ``oauth_codes`` table."""

    def __init__(self, db: Database, refresh: RefreshTokenStore) -> None:
        self._db = db
        self._refresh = refresh

    def save(
        self,
        code: str,
        *,
        client_id: str,
        subject: str,
        subject_kind: str,
        redirect_uri: str,
        scope: str,
        code_challenge: str,
        code_challenge_method: str,
        consent_id: str | None = None,
        now: datetime | None = None,
    ) -> None:
        """Store ``code`` (hashed) for 60 seconds, with the token family its redemption will start
        (resting on ``consent_id``, the consent the authorization recorded, if any)."""
        at = now or utcnow()
        family = new_family(client_id, at, consent_id=consent_id)
        with self._db.session() as session:
            session.add(family)
            session.add(
                OAuthCodeRow(
                    code_hash=hash_secret(code),
                    client_id=client_id,
                    subject=subject,
                    subject_kind=subject_kind,
                    redirect_uri=redirect_uri,
                    scope=scope,
                    code_challenge=code_challenge,
                    code_challenge_method=code_challenge_method,
                    family_id=family.family_id,
                    expires_at=at + CODE_TTL,
                )
            )

    def redeem(self, code: str, client_id: str, *, now: datetime | None = None) -> AuthorizationCode | None:
        """Mark ``code`` used and return it; ``None`` when unknown, expired, another client's or reused."""
        at = now or utcnow()
        digest = hash_secret(code)
        with self._db.session() as session:
            claimed = session.execute(
                update(OAuthCodeRow)
                .where(
                    OAuthCodeRow.code_hash == digest,
                    OAuthCodeRow.client_id == client_id,
                    OAuthCodeRow.used_at.is_(None),
                    OAuthCodeRow.expires_at > at,
                )
                .values(used_at=at)
                .returning(OAuthCodeRow.code_hash)
            ).scalar_one_or_none()
            row = session.get(OAuthCodeRow, digest, populate_existing=True)
            if row is None:
                return None
            replay = claimed is None and row.used_at is not None
            family = row.family_id
            found = AuthorizationCode(
                client_id=row.client_id,
                subject=row.subject,
                subject_kind=row.subject_kind,
                redirect_uri=row.redirect_uri,
                scope=row.scope,
                code_challenge=row.code_challenge,
                code_challenge_method=row.code_challenge_method,
                family_id=row.family_id,
                code_hash=row.code_hash,
            )
        if replay:
            self._refresh.revoke_family(family, now=at)
        return found if claimed is not None else None
