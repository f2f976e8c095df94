"""The ``oauth_refresh_tokens`` table: rotating refresh tokens grouped in families."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from fulcrum_core.data.base import CoreBase
from fulcrum_core.data.types import UTCDateTime

__all__ = ["OAuthRefreshTokenRow"]


class OAuthRefreshTokenRow(CoreBase):
    """One refresh token. Each use rotates it (``rotated_at``); reuse of a rotated one revokes the family,
    except within the rotation grace period, where ``grace_reuses`` counts the repeats it allowed."""

    __tablename__ = "oauth_refresh_tokens"
    __table_args__ = (Index("ix_oauth_refresh_tokens_family_id", "family_id"),)

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    family_id: Mapped[str] = mapped_column(String(32))
    client_id: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(64))
    subject_kind: Mapped[str] = mapped_column(String(16))
    scope: Mapped[str] = mapped_column(Text)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Uses after the rotation that the grace period accepted (each issued another token of the family).
    grace_reuses: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
