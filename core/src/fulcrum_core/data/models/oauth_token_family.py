"""The ``oauth_token_families`` table: one row per authorization, the lock and kill switch of its tokens."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from fulcrum_core.data.base import CoreBase
from fulcrum_core.data.types import UTCDateTime

__all__ = ["OAuthTokenFamilyRow"]


class OAuthTokenFamilyRow(CoreBase):
    """A refresh-token family, started by a code. Once ``revoked_at`` is set no token joins it again.

    Issuing into a family locks its row first, and revoking updates it first, so a token issued
    concurrently with a revocation is either revoked with the rest or refused. A family a customer's
    consent authorized names it (``consent_id``): no token joins it once that consent has ended, and
    none outlives it.
    """

    __tablename__ = "oauth_token_families"

    family_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The consent the authorization recorded (``consents.id``); none for the app's own families.
    consent_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
