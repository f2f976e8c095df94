"""The ``oauth_codes`` table: authorization codes, stored hashed, single-use and short-lived."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from fulcrum_core.data.base import CoreBase
from fulcrum_core.data.types import UTCDateTime

__all__ = ["OAuthCodeRow"]


class OAuthCodeRow(CoreBase):
    """One authorization code; ``used_at`` is set on redemption, and a second redemption is refused."""

    __tablename__ = "oauth_codes"

    # SHA-256 of the code: a database reader cannot redeem codes.
    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(64))
    subject_kind: Mapped[str] = mapped_column(String(16))
    redirect_uri: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(Text)
    code_challenge: Mapped[str] = mapped_column(String(128))
    code_challenge_method: Mapped[str] = mapped_column(String(8))
    # The refresh-token family the redemption started, so a replayed code can revoke it.
    family_id: Mapped[str] = mapped_column(String(32))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
