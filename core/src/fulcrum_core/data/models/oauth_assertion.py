"""The ``oauth_assertion_ids`` table: signed assertions already used (the identity provider's, the
partners' client assertions), until they expire."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from fulcrum_core.data.base import CoreBase
from fulcrum_core.data.types import UTCDateTime

__all__ = ["OAuthAssertionIdRow"]


class OAuthAssertionIdRow(CoreBase):
    """One used assertion: a second insert of its id fails, so every worker refuses the replay."""

    __tablename__ = "oauth_assertion_ids"
    __table_args__ = (Index("ix_oauth_assertion_ids_expires_at", "expires_at"),)

    # SHA-256 of the issuer slot and the assertion's ``jti``: a fixed size, whatever the issuer sends.
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
